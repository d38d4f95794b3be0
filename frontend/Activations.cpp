// Activations and initializers of model files: validation, defaults, and their nodes.
#include <charconv>
#include <cmath>

#include "frontend/LayerContext.h"
#include "frontend/Names.h"

namespace kiln::frontend {

std::string numStr(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string kerasShape(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + (s[i] == kBatch ? std::string("None") : std::to_string(s[i]));
  return out + (s.size() == 1 ? ",)" : ")");
}

SourceLoc LayerContext::at(std::initializer_list<std::string_view> sub) const {
  std::vector<FieldStep> path = {{"layer", index}, {field}};
  for (std::string_view f : sub) path.push_back({f});
  return src.at(path);
}

void LayerContext::fail(std::initializer_list<std::string_view> sub, const std::string& message) {
  diags.push_back(Diagnostic{at(sub), {}, {}, title() + ": " + message});
}

Value* LayerContext::parameter(const std::string& suffix, Shape shape, Builder::Attrs attrs,
                               bool trainable) {
  if (dtype != DType::Float32) attrs.push_back({"dtype", dtype});
  if (!trainable) attrs.push_back({"trainable", false});
  return b.parameter(name + "/" + suffix, std::move(shape), std::move(attrs));
}

std::optional<ActivationSpec> resolveActivation(LayerContext& c, const proto::ActivationLayer& a,
                                                bool fromDense) {
  ActivationSpec s;
  const std::string& kind = a.kind();
  if (kind.empty()) {
    if (fromDense) return s;  // No activation: linear.
    c.fail({}, "an activation layer needs a kind (one of " + oneOf(kActivations) + ")");
    return std::nullopt;
  }
  if (std::string err = checkName("activation", kind, kActivations); !err.empty()) {
    c.fail({fromDense ? "activation" : "kind"}, err);
    return std::nullopt;
  }
  s.kind = kind;
  bool ok = true;
  // Each parameter is checked against the kinds that take it, then its range.
  auto take = [&](bool given, std::string_view field,
                  std::initializer_list<std::string_view> takers) {
    if (!given) return false;
    for (std::string_view t : takers)
      if (t == kind) return true;
    std::string names;
    for (std::string_view t : takers) names += (names.empty() ? "" : ", ") + std::string(t);
    c.fail({field}, kind + " takes no " + std::string(field) + " (" + names + " do)");
    ok = false;
    return false;
  };
  auto range = [&](std::string_view field, double v, bool inRange, const std::string& rule) {
    if (std::isfinite(v) && inRange) return true;
    c.fail({field}, std::string(field) + " must be " + rule + ", found " + numStr(v));
    ok = false;
    return false;
  };
  if (kind == "leaky_relu") s.alpha = 0.01;
  if (kind == "elu") s.alpha = 1.0;
  if (kind == "prelu") s.alpha = 0.25;
  if (take(a.has_alpha(), "alpha", {"leaky_relu", "elu", "prelu"})) {
    // leaky_relu and elu slopes are at least 0 (the op's range); a PReLU alpha is learned and
    // starts anywhere.
    if (kind == "prelu" ? range("alpha", a.alpha(), true, "finite")
                        : range("alpha", a.alpha(), a.alpha() >= 0, "at least 0"))
      s.alpha = a.alpha();
  }
  if (take(a.has_lower(), "lower", {"rrelu"}) &&
      range("lower", a.lower(), a.lower() >= 0, "at least 0"))
    s.lower = a.lower();
  if (take(a.has_upper(), "upper", {"rrelu"}) &&
      range("upper", a.upper(), a.upper() >= 0, "at least 0"))
    s.upper = a.upper();
  if (ok && kind == "rrelu" && s.lower > s.upper) {
    c.fail({"lower"},
           "lower (" + numStr(s.lower) + ") must not exceed upper (" + numStr(s.upper) + ")");
    ok = false;
  }
  if (take(!a.approximate().empty(), "approximate", {"gelu"})) {
    if (std::string err = checkName("gelu approximation", a.approximate(), kGeluApproximations);
        !err.empty()) {
      c.fail({"approximate"}, err);
      ok = false;
    } else {
      s.approximate = a.approximate();
    }
  }
  if (take(a.has_beta(), "beta", {"swish"}) && range("beta", a.beta(), true, "finite"))
    s.beta = a.beta();
  if (take(a.has_learnable_beta(), "learnable_beta", {"swish"}))
    s.learnableBeta = a.learnable_beta();
  if (take(a.has_axis(), "axis", {"softmax", "log_softmax"})) s.axis = a.axis();
  if (!ok) return std::nullopt;
  return s;
}

Value* applyActivation(LayerContext& c, Value* x, const ActivationSpec& a,
                       std::initializer_list<std::string_view> where) {
  Builder& b = c.b;
  if (!x || a.kind == "linear") return x;
  b.setPrefix(c.name + "/");
  const Shape& shape = x->type().shape;
  auto simple = [&](OpKind op, Builder::Attrs attrs = {}) {
    return b.op(op, {x}, std::move(attrs), a.kind);
  };
  if (a.kind == "sigmoid") return simple(OpKind::Sigmoid);
  if (a.kind == "tanh") return simple(OpKind::Tanh);
  if (a.kind == "relu") return simple(OpKind::Relu);
  if (a.kind == "selu") return simple(OpKind::Selu);
  if (a.kind == "mish") return simple(OpKind::Mish);
  if (a.kind == "softplus") return simple(OpKind::Softplus);
  if (a.kind == "leaky_relu") return simple(OpKind::LeakyRelu, {{"alpha", a.alpha}});
  if (a.kind == "elu") return simple(OpKind::Elu, {{"alpha", a.alpha}});
  if (a.kind == "gelu") return simple(OpKind::Gelu, {{"approximate", a.approximate}});
  if (a.kind == "rrelu")
    return simple(OpKind::RRelu, {{"lower", a.lower}, {"upper", a.upper}, {"training", false}});
  if (a.kind == "softmax" || a.kind == "log_softmax") {
    int64_t rank = static_cast<int64_t>(shape.size());
    if (a.axis < -rank || a.axis >= rank || shape[a.axis < 0 ? a.axis + rank : a.axis] == kBatch) {
      c.fail(where, "axis " + std::to_string(a.axis) + " is not a feature axis of the input " +
                        kerasShape(shape));
      return nullptr;
    }
    return simple(a.kind == "softmax" ? OpKind::Softmax : OpKind::LogSoftmax, {{"axis", a.axis}});
  }
  if (a.kind == "prelu") {
    // One alpha per unit (the last axis), broadcast over the batch and any other axes.
    if (shape.empty() || shape.back() == kBatch) {
      c.fail(where, "prelu needs a feature axis, found input " + kerasShape(shape));
      return nullptr;
    }
    Value* alpha = c.parameter("alpha", {shape.back()},
                               {{"init", std::string("constant")}, {"init_value", a.alpha}});
    return b.op(OpKind::PRelu, {x, alpha}, {}, a.kind);
  }
  if (a.kind == "swish") {
    if (!a.learnableBeta) return simple(OpKind::Swish, {{"beta", a.beta}});
    Value* beta =
        c.parameter("beta_swish", {}, {{"init", std::string("constant")}, {"init_value", a.beta}});
    return b.op(OpKind::Swish, {x, beta}, {}, a.kind);
  }
  c.fail(where, "internal: activation '" + a.kind + "' has no expansion");
  return nullptr;
}

std::optional<Builder::Attrs> initializerAttrs(LayerContext& c, std::string_view field,
                                               const proto::Initializer& init, bool given,
                                               std::string_view fallback, const Shape& shape) {
  Builder::Attrs attrs;
  if (!given) {
    attrs.push_back({"init", std::string(fallback)});
    return attrs;
  }
  const std::string& kind = init.kind();
  const std::string what(field);
  if (kind.empty()) {
    c.fail({field}, what + " needs a kind (one of " + oneOf(kInitializers) + ")");
    return std::nullopt;
  }
  if (std::string err = checkName("initializer", kind, kInitializers); !err.empty()) {
    c.fail({field, "kind"}, what + ": " + err);
    return std::nullopt;
  }
  attrs.push_back({"init", kind});
  bool ok = true;
  auto only = [&](bool given, std::string_view sub, std::string_view owner) {
    if (!given) return false;
    if (kind == owner) return true;
    c.fail({field, sub},
           what + ": " + std::string(sub) + " applies to " + std::string(owner) + ", not " + kind);
    ok = false;
    return false;
  };
  if (only(init.scale() != 0, "scale", "variance_scaling")) {
    if (!(init.scale() > 0) || !std::isfinite(init.scale())) {
      c.fail({field, "scale"}, what + ": scale must be positive, found " + numStr(init.scale()));
      ok = false;
    } else {
      attrs.push_back({"init_scale", init.scale()});
    }
  }
  if (only(!init.mode().empty(), "mode", "variance_scaling")) {
    if (std::string err = checkName("variance_scaling mode", init.mode(), kInitModes);
        !err.empty()) {
      c.fail({field, "mode"}, what + ": " + err);
      ok = false;
    } else {
      attrs.push_back({"init_mode", init.mode()});
    }
  }
  if (only(!init.distribution().empty(), "distribution", "variance_scaling")) {
    if (std::string err =
            checkName("variance_scaling distribution", init.distribution(), kInitDistributions);
        !err.empty()) {
      c.fail({field, "distribution"}, what + ": " + err);
      ok = false;
    } else {
      attrs.push_back({"init_distribution", init.distribution()});
    }
  }
  if (only(init.value() != 0, "value", "constant")) {
    if (!std::isfinite(init.value())) {
      c.fail({field, "value"}, what + ": value must be finite");
      ok = false;
    }
    attrs.push_back({"init_value", init.value()});
  }
  if (only(init.values_size() > 0, "values", "values")) {
    int64_t need = numElements(shape);
    if (init.values_size() != need) {
      c.fail({field, "values"}, what + ": " + std::to_string(init.values_size()) +
                                    " values given, the shape " + shapeStr(shape) + " needs " +
                                    std::to_string(need));
      ok = false;
    }
    attrs.push_back(
        {"init_values", std::vector<double>(init.values().begin(), init.values().end())});
  } else if (kind == "values") {
    c.fail({field}, what + ": kind values needs the values (" + std::to_string(numElements(shape)) +
                        " for shape " + shapeStr(shape) + ")");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return attrs;
}

}  // namespace kiln::frontend
