// Reverse-mode autodiff: a reverse-topological walk over the nodes between the wrt values and
// the loss, summing each value's incoming gradients and applying each op's rule.
#include "compiler/autodiff/Autodiff.h"

#include <map>
#include <set>

#include "compiler/autodiff/GradRules.h"
#include "ir/Builder.h"
#include "ir/ShapeInference.h"

namespace kiln {

const GradTable& gradTable() {
  static const GradTable table = [] {
    GradTable t{};
    registerElementwiseGrads(t);
    registerNNGrads(t);
    registerShapeGrads(t);
    registerMiscGrads(t);
    return t;
  }();
  return table;
}

Value* unbroadcast(Builder& b, Value* grad, const Shape& shape) {
  if (!grad) return nullptr;
  const Shape& from = grad->type().shape;
  if (from == shape) return grad;
  const size_t lead = from.size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t k = 0; k < from.size(); ++k)
    if (k < lead || (shape[k - lead] == 1 && from[k] != 1)) axes.push_back(static_cast<int64_t>(k));
  Value* summed = axes.empty() ? grad : b.reduceSum(grad, axes, /*keepdims=*/false);
  if (summed && summed->type().shape != shape) summed = b.reshape(summed, shape);
  return summed;
}

Expected<GradientResult> differentiate(Graph& g, Value* loss, const std::vector<Value*>& wrt) {
  if (!loss) return Error::msg("differentiate: no loss value");
  const TensorType& lt = loss->type();
  if (!isFloat(lt.dtype) || (lt.rank() != 0 && !(lt.rank() == 1 && lt.shape[0] == 1)))
    return loss->node()->error("the loss must be a float scalar, found " + lt.str());
  KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());

  // Forward: values that depend on some wrt value (and are float: integer and bool values
  // carry no gradient).
  std::set<const Value*> fromWrt(wrt.begin(), wrt.end());
  for (Node* n : order) {
    bool fed = false;
    for (Value* v : n->operands()) fed |= fromWrt.count(v) != 0;
    if (!fed) continue;
    for (size_t r = 0; r < n->numResults(); ++r)
      if (isFloat(n->result(r)->type().dtype)) fromWrt.insert(n->result(r));
  }
  // Backward: values the loss depends on.
  std::set<const Value*> toLoss{loss};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    bool reaches = false;
    for (size_t r = 0; r < n->numResults(); ++r) reaches |= toLoss.count(n->result(r)) != 0;
    if (reaches)
      for (Value* v : n->operands()) toLoss.insert(v);
  }
  auto active = [&](const Value* v) { return fromWrt.count(v) && toLoss.count(v); };

  Builder b(g);
  b.setPrefix("grad/");
  size_t firstNew = g.nodes().size();
  // Gradient contributions per value, summed lazily when the value's node is processed.
  std::map<const Value*, std::vector<Value*>> pending;
  pending[loss].push_back(b.op(OpKind::Constant, {},
                               {{"dtype", lt.dtype}, {"shape", lt.shape}, {"value", std::vector<double>{1.0}}},
                               "seed"));
  auto total = [&](const Value* v) -> Value* {
    auto it = pending.find(v);
    if (it == pending.end() || it->second.empty()) return nullptr;
    Value* sum = it->second[0];
    for (size_t i = 1; i < it->second.size(); ++i) sum = b.add(sum, it->second[i]);
    it->second = {sum};
    return sum;
  };

  const GradTable& table = gradTable();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    if (n->op() == OpKind::Input || n->op() == OpKind::Parameter || n->op() == OpKind::Constant) continue;
    bool any = false;
    std::vector<bool> wanted(n->numOperands());
    for (size_t i = 0; i < n->numOperands(); ++i) any |= wanted[i] = active(n->operand(i));
    if (!any) continue;
    std::vector<Value*> outGrads(n->numResults());
    bool anyGrad = false;
    for (size_t r = 0; r < n->numResults(); ++r) anyGrad |= (outGrads[r] = total(n->result(r))) != nullptr;
    if (!anyGrad) continue;
    const GradRule& rule = table[static_cast<size_t>(n->op())];
    if (rule.notDifferentiable)
      return n->error("is not differentiable, but it lies between a trainable value and the loss");
    if (!rule.fn) return n->error("no gradient rule for op '" + std::string(n->opName()) + "'");
    b.setLoc(n->loc());
    b.setPrefix("grad/" + n->name() + "/");
    GradContext ctx{b, *n, std::move(outGrads), wanted};
    std::vector<Value*> grads = rule.fn(ctx);
    if (!b.ok()) {
      Error e = b.takeStatus().takeError();
      return n->error("building the gradient failed: " + e.str());
    }
    for (size_t i = 0; i < n->numOperands() && i < grads.size(); ++i) {
      if (!wanted[i] || !grads[i]) continue;
      if (grads[i]->type().shape != n->operand(i)->type().shape)
        return n->error("internal: gradient of operand " + std::to_string(i) + " is " +
                        grads[i]->type().str() + ", expected " + n->operand(i)->type().str());
      pending[n->operand(i)].push_back(grads[i]);
    }
  }
  GradientResult result;
  b.setPrefix("grad/");
  for (Value* w : wrt) result.grads.push_back(total(w));
  if (!b.ok()) return b.takeStatus().takeError();
  std::vector<Node*> all = g.nodes();
  result.added.assign(all.begin() + static_cast<std::ptrdiff_t>(firstNew), all.end());
  return result;
}

}  // namespace kiln
