// Gradient rules of the reductions and the data-movement ops (reshape, transpose, concat, slice, pad).
// Each rule's derivative is written above it; g is d loss / d result, y the forward result.
// Shapes may hold the batch dimension (-1), whose size only the run knows: no rule here needs it.
#include <algorithm>
#include <set>

#include "compiler/autodiff/GradRules.h"
#include "ir/ShapeInference.h"

namespace kiln {
namespace {

using Grads = std::vector<Value*>;

// ---- Helpers -----------------------------------------------------------------------------------

/// The axes a reduction node folds (its `axes`, normalized; all of them when empty).
std::set<int64_t> reducedAxes(const Node& n, int64_t rank) {
  std::set<int64_t> axes;
  for (int64_t a : n.ints("axes")) axes.insert(*normalizeAxis(a, rank));
  if (axes.empty())
    for (int64_t k = 0; k < rank; ++k) axes.insert(k);
  return axes;
}

/// x's shape with every reduced axis kept as size 1 (the keepdims result shape).
Shape keepdimsShape(const Shape& x, const std::set<int64_t>& reduced) {
  Shape s = x;
  for (int64_t k : reduced) s[k] = 1;
  return s;
}

/// A reduction's result gradient reshaped to the keepdims shape, so it broadcasts against x.
Value* keepdimsGrad(GradContext& c, Value* v, const std::set<int64_t>& reduced) {
  Shape keep = keepdimsShape(c.x()->type().shape, reduced);
  return v->type().shape == keep ? v : c.b.reshape(v, keep);
}

Value* select(Builder& b, Value* cond, Value* t, Value* f) { return b.op(OpKind::Select, {cond, t, f}); }

/// `v` (whose shape broadcasts to x's) repeated to x's shape. A static shape multiplies by a
/// constant of ones; with a batch dimension, select(x == x, v, v) takes x's run-time shape and
/// is v whichever way the comparison goes (x == x is false only for NaN).
Value* broadcastLike(GradContext& c, Value* v, Value* x) {
  const Shape& s = x->type().shape;
  if (v->type().shape == s) return v;
  if (!hasBatchDim(s)) return c.b.mul(v, c.b.constant({1.0}, s, c.dtype()));
  return select(c.b, c.b.op(OpKind::Equal, {x, x}), v, v);
}

/// The number of elements of x a reduction over `reduced` folds into each result, as a tensor
/// that broadcasts against the keepdims shape. Static axes give a constant; the batch
/// dimension is counted at run time, by summing ones over the batch axes of x narrowed to one
/// element along every static axis (cheap: one element per batch row).
Value* reducedCount(GradContext& c, Value* x, const std::set<int64_t>& reduced) {
  Builder& b = c.b;
  const Shape& s = x->type().shape;
  double fixed = 1;
  std::vector<int64_t> batchAxes, narrow, zeros, onesList;
  for (int64_t k = 0; k < static_cast<int64_t>(s.size()); ++k) {
    if (reduced.count(k) && s[k] != kBatch) fixed *= static_cast<double>(s[k]);
    if (reduced.count(k) && s[k] == kBatch) batchAxes.push_back(k);
    if (s[k] != kBatch && s[k] != 1) {
      narrow.push_back(k);
      zeros.push_back(0);
      onesList.push_back(1);
    }
  }
  if (batchAxes.empty()) return c.c(fixed);
  Value* probe = narrow.empty() ? x
                                : b.op(OpKind::Slice, {x},
                                       {{"starts", zeros}, {"ends", onesList}, {"axes", narrow}});
  Value* ones = select(b, b.op(OpKind::Equal, {probe, probe}), c.c(1), c.c(1));
  Value* count = b.reduceSum(ones, batchAxes, /*keepdims=*/true);
  return fixed == 1 ? count : b.mul(count, c.c(fixed));
}

// ---- Reductions --------------------------------------------------------------------------------

// y = Σ_axes x: every x element in a group gets its group's gradient, dx = broadcast(g).
Grads reduceSumGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  std::set<int64_t> reduced = reducedAxes(c.node, c.x()->type().rank());
  return {broadcastLike(c, keepdimsGrad(c, c.g(), reduced), c.x())};
}

// y = (1/m) Σ_axes x over the m elements of each group: dx = broadcast(g)/m.
Grads reduceMeanGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  Value* x = c.x();
  std::set<int64_t> reduced = reducedAxes(c.node, x->type().rank());
  Value* scaled = c.b.div(keepdimsGrad(c, c.g(), reduced), reducedCount(c, x, reduced));
  return {broadcastLike(c, scaled, x)};
}

// y = max_axes x: the gradient goes to the positions of the maximum. Where several elements tie
// for it (the max is not differentiable there), they share it equally, as TensorFlow does:
//   mask = (x == y), dx = mask ⊗ g / Σ_axes mask
// which for a unique maximum is the one-hot subgradient the central difference measures.
Grads reduceMaxGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  Builder& b = c.b;
  Value* x = c.x();
  std::set<int64_t> reduced = reducedAxes(c.node, x->type().rank());
  Value* y = keepdimsGrad(c, c.y(), reduced);
  Value* mask = select(b, b.op(OpKind::Equal, {x, y}), c.c(1), c.c(0));
  Value* ties = b.reduceSum(mask, std::vector<int64_t>(reduced.begin(), reduced.end()), true);
  return {b.mul(mask, b.div(keepdimsGrad(c, c.g(), reduced), ties))};
}

// ---- Data movement -----------------------------------------------------------------------------

// Reshape and flatten only relabel the row-major elements: dx = reshape(g, shape of x) (a batch
// dimension in x's shape stays -1 in the target).
Grads reshapeGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  const Shape& s = c.x()->type().shape;
  return {c.g()->type().shape == s ? c.g() : c.b.reshape(c.g(), s)};
}

// y = transpose(x, perm), axis k of y being axis perm[k] of x: dx = transpose(g, perm⁻¹) with
// perm⁻¹[perm[k]] = k. An empty perm reverses the axes, and so does its inverse.
Grads transposeGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  std::vector<int64_t> perm = c.node.ints("perm"), inverse(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) inverse[static_cast<size_t>(perm[k])] = static_cast<int64_t>(k);
  return {c.b.op(OpKind::Transpose, {c.g()}, {{"perm", inverse}})};
}

// y = concat(x_0, x_1, ...) along `axis`: dx_i = g[..., o_i : o_i + d_i, ...] along that axis,
// with o_i the sum of the earlier operands' sizes d_j there (never the batch dimension).
Grads concatGrad(GradContext& c) {
  const int64_t axis = *normalizeAxis(c.node.i("axis"), c.y()->type().rank());
  Grads r(c.node.numOperands());
  int64_t offset = 0;
  for (size_t i = 0; i < c.node.numOperands(); ++i) {
    const int64_t d = c.x(i)->type().shape[axis];
    if (c.want(i))
      r[i] = c.b.op(OpKind::Slice, {c.g()},
                    {{"starts", std::vector<int64_t>{offset}},
                     {"ends", std::vector<int64_t>{offset + d}},
                     {"axes", std::vector<int64_t>{axis}}});
    offset += d;
  }
  return r;
}

// y = x[b_k : e_k] along each sliced axis k (Python bounds, clamped as in the forward):
// dx = g padded with zeros, b_k before and dim_k − e_k after (0 on the other axes).
Grads sliceGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  const Node& n = c.node;
  const Shape& s = c.x()->type().shape;
  std::vector<int64_t> starts = n.ints("starts"), ends = n.ints("ends"), axes = n.ints("axes");
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  std::vector<int64_t> before(s.size(), 0), after(s.size(), 0);
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t ax = *normalizeAxis(axes[k], static_cast<int64_t>(s.size()));
    const int64_t dim = s[ax];
    auto clampIndex = [dim](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + dim : i, 0, dim); };
    before[ax] = clampIndex(starts[k]);
    after[ax] = dim - clampIndex(ends[k]);
  }
  return {c.b.op(OpKind::Pad, {c.g()}, {{"before", before}, {"after", after}})};
}

// y = x with before_k zeros ahead of and after_k zeros behind axis k: dx = g[before_k :
// before_k + dim_k] along each padded axis (padding of 0 on an axis takes all of it).
Grads padGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  const Shape& s = c.x()->type().shape;
  std::vector<int64_t> before = c.node.ints("before"), after = c.node.ints("after");
  std::vector<int64_t> starts, ends, axes;
  for (size_t k = 0; k < s.size(); ++k) {
    if (before[k] == 0 && after[k] == 0) continue;
    starts.push_back(before[k]);
    ends.push_back(before[k] + s[k]);
    axes.push_back(static_cast<int64_t>(k));
  }
  if (axes.empty()) return {c.g()};
  return {c.b.op(OpKind::Slice, {c.g()}, {{"starts", starts}, {"ends", ends}, {"axes", axes}})};
}

}  // namespace

void registerShapeGrads(GradTable& t) {
  t[size_t(OpKind::ReduceSum)].fn = &reduceSumGrad;
  t[size_t(OpKind::ReduceMean)].fn = &reduceMeanGrad;
  t[size_t(OpKind::ReduceMax)].fn = &reduceMaxGrad;
  t[size_t(OpKind::Reshape)].fn = &reshapeGrad;
  t[size_t(OpKind::Flatten)].fn = &reshapeGrad;
  t[size_t(OpKind::Transpose)].fn = &transposeGrad;
  t[size_t(OpKind::Concat)].fn = &concatGrad;
  t[size_t(OpKind::Slice)].fn = &sliceGrad;
  t[size_t(OpKind::Pad)].fn = &padGrad;
}

}  // namespace kiln
