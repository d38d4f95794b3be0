// Parameter initializers of chapter11.md: variance scaling (glorot/he/lecun, uniform and
// truncated normal), zeros, ones, constant and explicit values. Used by the interpreter, by the
// compiler for weights baked into objects, and by compiled training binaries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::rt {

struct InitSpec {
  std::string kind;  // empty: glorot_uniform for rank >= 2, zeros otherwise
  double scale = 1.0;
  std::string mode = "fan_in";                     // variance_scaling only
  std::string distribution = "truncated_normal";   // variance_scaling only
  double value = 0.0;                              // constant
  std::vector<double> values;                      // values
};

/// (fan_in, fan_out) of a kernel: [fan_in, fan_out] for rank 2 (Keras layout); for rank > 2 the
/// leading dimensions are the receptive field; rank 1 uses its size for both, rank 0 uses 1.
void computeFans(const std::vector<int64_t>& shape, double* fanIn, double* fanOut);

/// Fills `out` (numElements(shape) values) from `spec`, drawing from (seed, stream). Returns an
/// empty string, or what is wrong with the spec.
std::string fillInitializer(const InitSpec& spec, const std::vector<int64_t>& shape, uint64_t seed,
                            uint64_t stream, double* out);

/// Keras's correction: the standard deviation of a unit normal truncated at +-2.
inline constexpr double kTruncatedNormalStddev = 0.87962566103423978;

}  // namespace kiln::rt
