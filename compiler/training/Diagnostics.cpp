// Diagnostic outputs of a training-step graph: a few reductions per layer, cheap next to the
// matrix products, computed by the same executor (interpreter or compiled) as the step itself.
#include "compiler/training/Diagnostics.h"

#include <map>

#include "ir/Builder.h"

namespace kiln {
namespace {

std::string layerOf(const std::string& name) { return name.substr(0, name.find('/')); }

std::vector<int64_t> allAxes(const Value* v) {
  std::vector<int64_t> axes;
  for (int64_t k = 0; k < v->type().rank(); ++k) axes.push_back(k);
  return axes;
}

enum class Watch { None, Dead, Saturated, Neither };

Watch watchOf(OpKind op) {
  switch (op) {
    case OpKind::Relu: case OpKind::LeakyRelu: case OpKind::PRelu: case OpKind::RRelu:
    case OpKind::Elu: case OpKind::Selu:
      return Watch::Dead;
    case OpKind::Sigmoid: case OpKind::Tanh:
      return Watch::Saturated;
    case OpKind::Gelu: case OpKind::Swish: case OpKind::Mish: case OpKind::Softplus:
      return Watch::Neither;
    default:
      return Watch::None;
  }
}

}  // namespace

Expected<std::vector<std::string>> addTrainingDiagnostics(Graph& g, const TrainingGraphInfo& info) {
  Builder b(g);
  b.setPrefix(kDiagnosticPrefix);
  std::vector<std::string> names;
  auto output = [&](const std::string& name, Value* v) {
    if (!v) return;
    g.addOutput(name, v);
    names.push_back(name);
  };
  auto fraction = [&](Value* cond) {
    return b.op(OpKind::ReduceMean, {b.op(OpKind::Cast, {cond}, {{"dtype", DType::Float32}})},
                {{"axes", allAxes(cond)}});
  };

  // Gradient norms, per layer, in the order the layers' parameters appear.
  std::vector<std::string> layers;
  std::map<std::string, Value*> sumSquares;
  for (size_t i = 0; i < info.trainable.size(); ++i) {
    Value* grad = info.gradients[i];
    if (!grad) continue;
    Value* gf = grad->type().dtype == DType::Float32 ? grad
                                                     : b.op(OpKind::Cast, {grad}, {{"dtype", DType::Float32}});
    Value* ss = b.reduceSum(b.square(gf), allAxes(gf));
    std::string layer = layerOf(info.trainable[i]);
    auto [it, fresh] = sumSquares.try_emplace(layer, ss);
    if (fresh) layers.push_back(layer);
    else it->second = b.add(it->second, ss);
  }
  for (const std::string& layer : layers)
    output(kDiagnosticPrefix + layer + "/grad_norm", b.op(OpKind::Sqrt, {sumSquares[layer]}));

  // Activations of the forward pass (not the gradient nodes autodiff added).
  for (Node* n : g.nodes()) {
    Watch w = watchOf(n->op());
    if (w == Watch::None || n->name().starts_with("grad/") || n->name().starts_with(kDiagnosticPrefix)) continue;
    Value* y = n->result(0);
    if (y->type().dtype != DType::Float32 || y->type().rank() == 0) continue;
    std::string layer = layerOf(n->name());
    std::vector<int64_t> axes = allAxes(y);
    Value* mean = b.op(OpKind::ReduceMean, {y}, {{"axes", axes}});
    Value* meanSq = b.op(OpKind::ReduceMean, {b.square(y)}, {{"axes", axes}});
    // Var = E[y^2] - E[y]^2, clamped at 0 against rounding.
    Value* var = b.op(OpKind::Maximum, {b.sub(meanSq, b.square(mean)), b.scalar(0.0)});
    output(kDiagnosticPrefix + layer + "/mean", mean);
    output(kDiagnosticPrefix + layer + "/std", b.op(OpKind::Sqrt, {var}));
    if (w == Watch::Dead) {
      output(kDiagnosticPrefix + layer + "/dead",
             fraction(b.op(OpKind::LessEqual, {n->operand(0), b.scalar(0.0)})));
    } else if (w == Watch::Saturated) {
      Value* sat = n->op() == OpKind::Sigmoid
                       ? b.op(OpKind::Select, {b.op(OpKind::Less, {y, b.scalar(0.01)}), b.scalar(1.0),
                                               b.op(OpKind::Cast, {b.op(OpKind::Greater, {y, b.scalar(0.99)})},
                                                    {{"dtype", DType::Float32}})})
                       : b.op(OpKind::Cast, {b.op(OpKind::Greater, {b.op(OpKind::Abs, {y}), b.scalar(0.99)})},
                              {{"dtype", DType::Float32}});
      output(kDiagnosticPrefix + layer + "/saturated", b.op(OpKind::ReduceMean, {sat}, {{"axes", axes}}));
    }
  }
  KILN_RETURN_IF_ERROR(b.takeStatus());
  return names;
}

}  // namespace kiln
