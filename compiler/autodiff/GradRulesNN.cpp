// Gradient rules of matmul, softmax, batch normalization, the losses and the metrics (chapter11.md).
// Each rule's derivative is written above it; g is d loss / d result, y the forward result.
#include <string>

#include "compiler/autodiff/GradRules.h"
#include "ir/ShapeInference.h"

namespace kiln {
namespace {

using Grads = std::vector<Value*>;

Value* reduceMean(Builder& b, Value* v, std::vector<int64_t> axes, bool keepdims) {
  return b.op(OpKind::ReduceMean, {v}, {{"axes", std::move(axes)}, {"keepdims", keepdims}});
}

/// The number of elements of `v`, as a scalar of the node's dtype. A shape with the batch
/// dimension is counted at run time by summing ones of v's shape: select(v == v, 1, 1) is 1
/// everywhere, NaN included.
Value* elementCount(GradContext& c, Value* v) {
  const Shape& s = v->type().shape;
  if (!hasBatchDim(s)) return c.c(static_cast<double>(numElements(s)));
  Value* ones = c.b.op(OpKind::Select, {c.b.op(OpKind::Equal, {v, v}), c.c(1), c.c(1)});
  return c.b.reduceSum(ones, {});
}

// ---- Leaves ------------------------------------------------------------------------------------

// A constant has no operands (autodiff never reaches it with a wanted operand).
Grads constantGrad(GradContext&) { return {}; }

// ---- Matrix product ----------------------------------------------------------------------------

// y = op(a)·op(b), op = transpose where the flag is set, G = d loss / d y. From
// d(A·B) = dA·B + A·dB with A = op(a), B = op(b): dA = G·Bᵀ, dB = Aᵀ·G, and da = op⁻¹(dA):
//   a·b:    da = G·bᵀ     db = aᵀ·G
//   aᵀ·b:   da = b·Gᵀ     db = a·G
//   a·bᵀ:   da = G·b      db = Gᵀ·a
//   aᵀ·bᵀ:  da = bᵀ·Gᵀ    db = Gᵀ·aᵀ
// Each is one matmul with transpose flags: no transpose is materialized.
Grads matmulGrad(GradContext& c) {
  const bool ta = c.node.b("transpose_a"), tb = c.node.b("transpose_b");
  Value* a = c.x(0);
  Value* b = c.x(1);
  Value* g = c.g();
  Grads r(2);
  if (c.want(0)) {
    if (!ta) r[0] = c.b.matmul(g, b, /*transposeA=*/false, /*transposeB=*/!tb);
    else r[0] = c.b.matmul(b, g, /*transposeA=*/tb, /*transposeB=*/true);
  }
  if (c.want(1)) {
    if (!tb) r[1] = c.b.matmul(a, g, /*transposeA=*/!ta, /*transposeB=*/false);
    else r[1] = c.b.matmul(g, a, /*transposeA=*/true, /*transposeB=*/ta);
  }
  return r;
}

// ---- Softmax -----------------------------------------------------------------------------------

// y = softmax(x) along `axis`: dy_k/dx_j = y_k(δ_kj − y_j), so dx = y ⊗ (g − Σ_axis g⊗y).
Grads softmaxGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  Value* y = c.y();
  Value* dot = c.b.reduceSum(c.b.mul(c.g(), y), {c.node.i("axis")}, /*keepdims=*/true);
  return {c.b.mul(y, c.b.sub(c.g(), dot))};
}

// y = log_softmax(x) = x − log Σ exp(x): dy_k/dx_j = δ_kj − softmax(x)_j, and softmax = exp(y),
// so dx = g − exp(y) ⊗ Σ_axis g.
Grads logSoftmaxGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr};
  Value* total = c.b.reduceSum(c.g(), {c.node.i("axis")}, /*keepdims=*/true);
  return {c.b.sub(c.g(), c.b.mul(c.b.exp(c.y()), total))};
}

// ---- Batch normalization -----------------------------------------------------------------------

// Per feature c (an index along `axis`), sums Σ and means E over the other axes (m elements):
//   y = γ x̂ + β,  x̂ = (x − μ)·r,  r = 1/sqrt(σ² + ε)
// Inference (μ, σ² the moving statistics, constants here):
//   dx = g γ r,  dγ = Σ g x̂,  dβ = Σ g
// Training (μ = E x, σ² = E (x − μ)², both functions of x): dβ and dγ as above, and through the
// statistics (dμ/dx = 1/m, dσ²/dx = 2(x − μ)/m):
//   dx = γ r/m (m g − Σ g − x̂ Σ g x̂) = γ r (g − E g − x̂ E g x̂)
// (written with means, so the batch size m never has to be known when the graph is built).
// The moving-statistic results (1 and 2) carry no gradient, and the moving statistics get none.
Grads batchNormGrad(GradContext& c) {
  Grads r(5);
  Value* g = c.g(0);
  if (!g) return r;
  Builder& b = c.b;
  const Node& n = c.node;
  Value* x = c.x(0);
  const Shape& xs = x->type().shape;
  const int64_t rank = x->type().rank();
  const int64_t axis = *normalizeAxis(n.i("axis"), rank);
  std::vector<int64_t> others;
  Shape featureShape(static_cast<size_t>(rank), 1);
  featureShape[axis] = xs[axis];
  for (int64_t k = 0; k < rank; ++k)
    if (k != axis) others.push_back(k);
  // A [C] vector laid along `axis`, so that it broadcasts against x.
  auto perFeature = [&](Value* v) { return axis == rank - 1 ? v : b.reshape(v, featureShape); };
  // Sum/mean over the non-feature axes (none for a rank-1 x: an empty axes list means all).
  auto sumOthers = [&](Value* v) { return others.empty() ? v : b.reduceSum(v, others); };
  auto meanOthers = [&](Value* v) { return others.empty() ? v : reduceMean(b, v, others, true); };
  Value* eps = c.c(n.f("epsilon"));
  Value* gamma = perFeature(c.x(1));

  if (!n.b("training")) {
    Value* rstd = perFeature(b.op(OpKind::Rsqrt, {b.add(c.x(4), eps)}));
    if (c.want(0)) r[0] = b.mul(g, b.mul(gamma, rstd));
    if (c.want(1)) r[1] = sumOthers(b.mul(g, b.mul(b.sub(x, perFeature(c.x(3))), rstd)));
    if (c.want(2)) r[2] = sumOthers(g);
    return r;
  }
  Value* centered = b.sub(x, meanOthers(x));
  Value* rstd = b.op(OpKind::Rsqrt, {b.add(meanOthers(b.square(centered)), eps)});
  Value* xhat = b.mul(centered, rstd);
  Value* gxhat = b.mul(g, xhat);
  if (c.want(0)) {
    Value* inner = b.sub(b.sub(g, meanOthers(g)), b.mul(xhat, meanOthers(gxhat)));
    r[0] = b.mul(b.mul(gamma, rstd), inner);
  }
  if (c.want(1)) r[1] = sumOthers(gxhat);
  if (c.want(2)) r[2] = sumOthers(g);
  return r;
}

// ---- Losses ------------------------------------------------------------------------------------

// loss = (1/N) Σ_r −log softmax(z_r)[y_r]: d loss/dz_r = (softmax(z_r) − onehot(y_r)) / N.
// The integer labels get no gradient.
Grads sparseSoftmaxCrossEntropyGrad(GradContext& c) {
  if (!c.want(0)) return {nullptr, nullptr};
  Builder& b = c.b;
  Value* z = c.x(0);
  Value* p = b.op(OpKind::Softmax, {z}, {{"axis", int64_t{-1}}});
  Value* target = b.op(OpKind::OneHot, {c.x(1)},
                       {{"depth", z->type().shape[1]}, {"dtype", c.dtype()}});
  Value* scale = b.div(c.g(), elementCount(c, c.x(1)));
  return {b.mul(b.sub(p, target), scale), nullptr};
}

// loss = (1/n) Σ max(z, 0) − z y + log(1 + e^−|z|) = (1/n) Σ softplus(z) − z y over all n
// elements: d/dz = (σ(z) − y)/n, d/dy = −z/n.
Grads binaryCrossEntropyGrad(GradContext& c) {
  Builder& b = c.b;
  Value* z = c.x(0);
  Value* scale = b.div(c.g(), elementCount(c, z));
  Grads r(2);
  if (c.want(0)) r[0] = b.mul(b.sub(b.op(OpKind::Sigmoid, {z}), c.x(1)), scale);
  if (c.want(1)) r[1] = b.mul(b.neg(z), scale);
  return r;
}

// loss = (1/n) Σ (p − t)²: d/dp = 2(p − t)/n, d/dt = −2(p − t)/n.
Grads meanSquaredErrorGrad(GradContext& c) {
  Builder& b = c.b;
  Value* scale = b.mul(b.div(c.g(), elementCount(c, c.x(0))), c.c(2));
  Value* dp = b.mul(b.sub(c.x(0), c.x(1)), scale);
  return {c.want(0) ? dp : nullptr, c.want(1) ? b.neg(dp) : nullptr};
}

}  // namespace

void registerNNGrads(GradTable& t) {
  t[size_t(OpKind::Constant)].fn = &constantGrad;
  t[size_t(OpKind::MatMul)].fn = &matmulGrad;
  t[size_t(OpKind::Softmax)].fn = &softmaxGrad;
  t[size_t(OpKind::LogSoftmax)].fn = &logSoftmaxGrad;
  t[size_t(OpKind::BatchNorm)].fn = &batchNormGrad;
  t[size_t(OpKind::SparseSoftmaxCrossEntropy)].fn = &sparseSoftmaxCrossEntropyGrad;
  t[size_t(OpKind::BinaryCrossEntropyWithLogits)].fn = &binaryCrossEntropyGrad;
  t[size_t(OpKind::MeanSquaredError)].fn = &meanSquaredErrorGrad;
  // Integer results (argmax, one_hot) and a count of hits (accuracy) have no gradient.
  t[size_t(OpKind::ArgMax)].notDifferentiable = true;
  t[size_t(OpKind::Accuracy)].notDifferentiable = true;
  t[size_t(OpKind::OneHot)].notDifferentiable = true;
}

}  // namespace kiln
