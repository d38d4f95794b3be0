// Interpreter kernels for constants, matmul, softmax, batch norm, losses and metrics.
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "compiler/interpreter/Kernels.h"
#include "ir/ShapeInference.h"

namespace kiln {
namespace {

// Every statistic below is accumulated in double, also for float32 tensors: the interpreter is
// the oracle for compiled code, so it must be more accurate than what it checks.

/// A shape seen as [outer, dim, inner] around one axis: element (o, k, i) is at
/// (o * dim + k) * inner + i in row-major order.
struct AxisSplit {
  int64_t outer = 1, dim = 1, inner = 1;
  int64_t at(int64_t o, int64_t k, int64_t i) const { return (o * dim + k) * inner + i; }
};

AxisSplit splitAt(const Shape& s, int64_t axis) {
  AxisSplit r;
  for (int64_t k = 0; k < static_cast<int64_t>(s.size()); ++k) {
    if (k < axis) r.outer *= s[k];
    else if (k == axis) r.dim = s[k];
    else r.inner *= s[k];
  }
  return r;
}

/// The node's `axis` attribute as an index (the verifier has checked that it is in range).
int64_t axisOf(const Node& n, int64_t rank) { return *normalizeAxis(n.i("axis"), rank); }

/// Class index i of an int32 or int64 label tensor.
int64_t labelAt(const Tensor& labels, int64_t i) {
  return labels.dtype() == DType::Int64 ? labels.data<int64_t>()[i] : labels.data<int32_t>()[i];
}

/// Index of the largest of `count` values at `p[0], p[stride], ...`; the first one on ties.
template <class T>
int64_t argmaxStrided(const T* p, int64_t count, int64_t stride) {
  int64_t best = 0;
  for (int64_t k = 1; k < count; ++k)
    if (p[k * stride] > p[best * stride]) best = k;
  return best;
}

// ---- Leaves and matmul ---------------------------------------------------------------------

Status constantKernel(KernelContext& ctx) {
  std::vector<double> v = ctx.node.floats("value");
  Tensor& y = *ctx.out[0];
  // setDouble converts to any dtype, so int and bool constants need no special case.
  for (int64_t i = 0; i < y.size(); ++i) y.setDouble(i, v.size() == 1 ? v[0] : v[static_cast<size_t>(i)]);
  return Status::ok();
}

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Status matmulKernel(KernelContext& ctx) {
  const Tensor& a = *ctx.in[0];
  const Tensor& b = *ctx.in[1];
  Tensor& y = *ctx.out[0];
  bool ta = ctx.node.b("transpose_a"), tb = ctx.node.b("transpose_b");
  return dispatchFloat(a.dtype(), [&]<class T>() {
    Eigen::Map<const RowMajor<T>> ma(a.data<T>(), a.dim(0), a.dim(1));
    Eigen::Map<const RowMajor<T>> mb(b.data<T>(), b.dim(0), b.dim(1));
    // Products and sums in double, rounded once at the end.
    RowMajor<double> lhs = ma.template cast<double>();
    RowMajor<double> rhs = mb.template cast<double>();
    if (ta) lhs.transposeInPlace();
    if (tb) rhs.transposeInPlace();
    Eigen::Map<RowMajor<T>> my(y.data<T>(), y.dim(0), y.dim(1));
    my = (lhs * rhs).template cast<T>();
    return Status::ok();
  });
}

// ---- Softmax -------------------------------------------------------------------------------

// softmax(x)_k = exp(x_k - m) / Σ_j exp(x_j - m) with m = max_j x_j: the shift cancels, and it
// keeps every exponent <= 0, so huge logits neither overflow nor turn into inf/inf.
// log_softmax(x)_k = (x_k - m) - log Σ_j exp(x_j - m), never log(softmax), which underflows.
template <bool Log>
Status softmaxKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  AxisSplit s = splitAt(x.shape(), axisOf(ctx.node, x.rank()));
  return dispatchFloat(x.dtype(), [&]<class T>() {
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for (int64_t o = 0; o < s.outer; ++o) {
      for (int64_t i = 0; i < s.inner; ++i) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t k = 0; k < s.dim; ++k) m = std::max(m, double(xp[s.at(o, k, i)]));
        double sum = 0;
        for (int64_t k = 0; k < s.dim; ++k) sum += std::exp(double(xp[s.at(o, k, i)]) - m);
        double logSum = std::log(sum);
        for (int64_t k = 0; k < s.dim; ++k) {
          double shifted = double(xp[s.at(o, k, i)]) - m;
          yp[s.at(o, k, i)] = static_cast<T>(Log ? shifted - logSum : std::exp(shifted) / sum);
        }
      }
    }
    return Status::ok();
  });
}

// ---- Batch normalization -------------------------------------------------------------------

// Per feature c (an index along `axis`), over every other axis (m elements):
//   training:  μ = Σx/m, σ² = Σ(x − μ)²/m (biased), moving ← moving·momentum + stat·(1 − momentum)
//   inference: μ, σ² = the moving statistics, which pass through unchanged
//   y = γ(x − μ)/sqrt(σ² + ε) + β
// The variance takes a second pass over x − μ rather than Σx²/m − μ², which cancels badly when
// the features have a large offset.
Status batchNormKernel(KernelContext& ctx) {
  const Node& n = ctx.node;
  const Tensor& x = *ctx.in[0];
  AxisSplit s = splitAt(x.shape(), axisOf(n, x.rank()));
  const double eps = n.f("epsilon"), momentum = n.f("momentum");
  const bool training = n.b("training");
  return dispatchFloat(x.dtype(), [&]<class T>() {
    const T* xp = x.data<T>();
    const T* gamma = ctx.in[1]->data<T>();
    const T* beta = ctx.in[2]->data<T>();
    const T* movingMean = ctx.in[3]->data<T>();
    const T* movingVar = ctx.in[4]->data<T>();
    T* yp = ctx.out[0]->data<T>();
    T* newMean = ctx.out[1]->data<T>();
    T* newVar = ctx.out[2]->data<T>();
    const double m = double(s.outer * s.inner);
    for (int64_t c = 0; c < s.dim; ++c) {
      double mean = movingMean[c], var = movingVar[c];
      if (training) {
        double sum = 0;
        for (int64_t o = 0; o < s.outer; ++o)
          for (int64_t i = 0; i < s.inner; ++i) sum += xp[s.at(o, c, i)];
        mean = sum / m;
        double sq = 0;
        for (int64_t o = 0; o < s.outer; ++o)
          for (int64_t i = 0; i < s.inner; ++i) {
            double d = double(xp[s.at(o, c, i)]) - mean;
            sq += d * d;
          }
        var = sq / m;
        newMean[c] = static_cast<T>(double(movingMean[c]) * momentum + mean * (1 - momentum));
        newVar[c] = static_cast<T>(double(movingVar[c]) * momentum + var * (1 - momentum));
      } else {
        newMean[c] = movingMean[c];
        newVar[c] = movingVar[c];
      }
      const double invStd = 1 / std::sqrt(var + eps);
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) {
          int64_t e = s.at(o, c, i);
          yp[e] = static_cast<T>(double(gamma[c]) * (double(xp[e]) - mean) * invStd + double(beta[c]));
        }
    }
    return Status::ok();
  });
}

// ---- Losses and metrics --------------------------------------------------------------------

// loss = (1/N) Σ_r −log_softmax(z_r)[y_r], with −log_softmax(z)[y] = (m − z_y) + log Σ_j exp(z_j − m)
// (log-sum-exp with m = max_j z_j), finite for any finite logits.
Status sparseSoftmaxCrossEntropyKernel(KernelContext& ctx) {
  const Tensor& logits = *ctx.in[0];
  const Tensor& labels = *ctx.in[1];
  const int64_t rows = logits.dim(0), classes = logits.dim(1);
  return dispatchFloat(logits.dtype(), [&]<class T>() -> Status {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const T* z = logits.data<T>() + r * classes;
      int64_t label = labelAt(labels, r);
      if (label < 0 || label >= classes)
        return ctx.error("label " + std::to_string(label) + " in row " + std::to_string(r) +
                         " is outside the classes [0, " + std::to_string(classes) + ")");
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < classes; ++j) m = std::max(m, double(z[j]));
      double sum = 0;
      for (int64_t j = 0; j < classes; ++j) sum += std::exp(double(z[j]) - m);
      total += (m - double(z[label])) + std::log(sum);
    }
    ctx.out[0]->data<T>()[0] = static_cast<T>(total / double(rows));
    return Status::ok();
  });
}

// −[y log σ(z) + (1 − y) log(1 − σ(z))] = max(z, 0) − z·y + log1p(exp(−|z|)): the exponent is
// never positive, so no overflow, and no log(0) for saturated logits. Mean over all elements.
Status binaryCrossEntropyKernel(KernelContext& ctx) {
  const Tensor& z = *ctx.in[0];
  const Tensor& y = *ctx.in[1];
  return dispatchFloat(z.dtype(), [&]<class T>() {
    const T* zp = z.data<T>();
    const T* yp = y.data<T>();
    double total = 0;
    for (int64_t e = 0; e < z.size(); ++e) {
      double ze = zp[e];
      total += std::max(ze, 0.0) - ze * double(yp[e]) + std::log1p(std::exp(-std::abs(ze)));
    }
    ctx.out[0]->data<T>()[0] = static_cast<T>(total / double(z.size()));
    return Status::ok();
  });
}

Status meanSquaredErrorKernel(KernelContext& ctx) {
  const Tensor& p = *ctx.in[0];
  const Tensor& t = *ctx.in[1];
  return dispatchFloat(p.dtype(), [&]<class T>() {
    double total = 0;
    for (int64_t e = 0; e < p.size(); ++e) {
      double d = double(p.data<T>()[e]) - double(t.data<T>()[e]);
      total += d * d;
    }
    ctx.out[0]->data<T>()[0] = static_cast<T>(total / double(p.size()));
    return Status::ok();
  });
}

Status argmaxKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  AxisSplit s = splitAt(x.shape(), axisOf(ctx.node, x.rank()));
  int64_t* yp = ctx.out[0]->data<int64_t>();
  return dispatchNumeric(x.dtype(), [&]<class T>() {
    // The result drops `axis`, so (o, i) is element o * inner + i of it.
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i)
        yp[o * s.inner + i] = argmaxStrided(x.data<T>() + s.at(o, 0, i), s.dim, s.inner);
    return Status::ok();
  });
}

// A label outside [0, C) is an error, as in the loss: counting it as a miss would report a
// silently wrong accuracy for data whose labels do not fit the model.
Status accuracyKernel(KernelContext& ctx) {
  const Tensor& logits = *ctx.in[0];
  const Tensor& labels = *ctx.in[1];
  const int64_t rows = logits.dim(0), classes = logits.dim(1);
  return dispatchFloat(logits.dtype(), [&]<class T>() -> Status {
    int64_t hits = 0;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t label = labelAt(labels, r);
      if (label < 0 || label >= classes)
        return ctx.error("label " + std::to_string(label) + " in row " + std::to_string(r) +
                         " is outside [0, " + std::to_string(classes) + ")");
      if (argmaxStrided(logits.data<T>() + r * classes, classes, 1) == label) ++hits;
    }
    ctx.out[0]->data<T>()[0] = static_cast<T>(double(hits) / double(rows));
    return Status::ok();
  });
}

// An index outside [0, depth) is an error: a silent all-zero row would hide bad labels.
Status oneHotKernel(KernelContext& ctx) {
  const Tensor& idx = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  const int64_t depth = ctx.node.i("depth");
  for (int64_t r = 0; r < idx.size(); ++r) {
    int64_t k = labelAt(idx, r);
    if (k < 0 || k >= depth)
      return ctx.error("index " + std::to_string(k) + " at position " + std::to_string(r) +
                       " is outside [0, " + std::to_string(depth) + ")");
    y.setDouble(r * depth + k, 1.0);
  }
  return Status::ok();
}

}  // namespace

void registerNNKernels(KernelTable& t) {
  t[size_t(OpKind::OneHot)] = &oneHotKernel;
  t[size_t(OpKind::Constant)] = &constantKernel;
  t[size_t(OpKind::MatMul)] = &matmulKernel;
  t[size_t(OpKind::Softmax)] = &softmaxKernel<false>;
  t[size_t(OpKind::LogSoftmax)] = &softmaxKernel<true>;
  t[size_t(OpKind::BatchNorm)] = &batchNormKernel;
  t[size_t(OpKind::SparseSoftmaxCrossEntropy)] = &sparseSoftmaxCrossEntropyKernel;
  t[size_t(OpKind::BinaryCrossEntropyWithLogits)] = &binaryCrossEntropyKernel;
  t[size_t(OpKind::MeanSquaredError)] = &meanSquaredErrorKernel;
  t[size_t(OpKind::ArgMax)] = &argmaxKernel;
  t[size_t(OpKind::Accuracy)] = &accuracyKernel;
}

}  // namespace kiln
