// Parameter initializers (chapter11.md, "Initializers").
#include "runtime/Init.h"

#include <cmath>

#include "runtime/Random.h"

namespace kiln::rt {

void computeFans(const std::vector<int64_t>& shape, double* fanIn, double* fanOut) {
  if (shape.empty()) {
    *fanIn = *fanOut = 1;
  } else if (shape.size() == 1) {
    *fanIn = *fanOut = static_cast<double>(shape[0]);
  } else {
    double receptive = 1;
    for (size_t k = 0; k + 2 < shape.size(); ++k) receptive *= static_cast<double>(shape[k]);
    *fanIn = receptive * static_cast<double>(shape[shape.size() - 2]);
    *fanOut = receptive * static_cast<double>(shape.back());
  }
}

std::string fillInitializer(const InitSpec& specIn, const std::vector<int64_t>& shape,
                            uint64_t seed, uint64_t stream, double* out) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  InitSpec spec = specIn;
  if (spec.kind.empty()) spec.kind = shape.size() >= 2 ? "glorot_uniform" : "zeros";

  if (spec.kind == "zeros" || spec.kind == "ones" || spec.kind == "constant") {
    double v = spec.kind == "zeros" ? 0.0 : spec.kind == "ones" ? 1.0 : spec.value;
    for (int64_t i = 0; i < n; ++i) out[i] = v;
    return {};
  }
  if (spec.kind == "values") {
    if (static_cast<int64_t>(spec.values.size()) != n)
      return "init 'values' has " + std::to_string(spec.values.size()) + " numbers, the shape needs " +
             std::to_string(n);
    for (int64_t i = 0; i < n; ++i) out[i] = spec.values[i];
    return {};
  }

  // Everything else is variance scaling: sigma^2 = scale / fan.
  double scale = spec.scale;
  std::string mode = spec.mode, dist = spec.distribution;
  auto family = [&](const char* prefix, double s, const char* m) {
    std::string k = spec.kind;
    if (k.rfind(prefix, 0) != 0) return false;
    std::string rest = k.substr(std::string(prefix).size());
    if (rest != "_uniform" && rest != "_normal") return false;
    scale = s;
    mode = m;
    dist = rest == "_uniform" ? "uniform" : "truncated_normal";
    return true;
  };
  if (spec.kind != "variance_scaling" && !family("glorot", 1.0, "fan_avg") &&
      !family("he", 2.0, "fan_in") && !family("lecun", 1.0, "fan_in"))
    return "unknown initializer '" + spec.kind + "'";

  double fanIn, fanOut;
  computeFans(shape, &fanIn, &fanOut);
  double fan = mode == "fan_in" ? fanIn : mode == "fan_out" ? fanOut : (fanIn + fanOut) / 2;
  if (mode != "fan_in" && mode != "fan_out" && mode != "fan_avg")
    return "unknown variance_scaling mode '" + mode + "'";
  double variance = scale / std::max(1.0, fan);
  RandomStream rng(seed, stream);
  if (dist == "uniform") {
    double r = std::sqrt(3.0 * variance);
    for (int64_t i = 0; i < n; ++i) out[i] = (2.0 * rng.uniform(static_cast<uint64_t>(i)) - 1.0) * r;
  } else if (dist == "untruncated_normal") {
    double sd = std::sqrt(variance);
    for (int64_t i = 0; i < n; ++i) out[i] = sd * rng.normal(static_cast<uint64_t>(i));
  } else if (dist == "truncated_normal") {
    // Redraw outside +-2 standard deviations; element i uses draws i, i+n, i+2n, ... so the
    // result does not depend on how many redraws other elements needed.
    double sd = std::sqrt(variance) / kTruncatedNormalStddev;
    for (int64_t i = 0; i < n; ++i) {
      double z;
      uint64_t k = static_cast<uint64_t>(i);
      do {
        z = rng.normal(k);
        k += static_cast<uint64_t>(n);
      } while (std::abs(z) > 2.0);
      out[i] = sd * z;
    }
  } else {
    return "unknown variance_scaling distribution '" + dist + "'";
  }
  return {};
}

}  // namespace kiln::rt
