// Interpreter kernels for reductions and data movement (reshape, flatten, transpose, concat, slice).
#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <type_traits>

#include "compiler/interpreter/Kernels.h"
#include "ir/ShapeInference.h"

namespace kiln {
namespace {

const unsigned char* bytesOf(const Tensor& t) { return static_cast<const unsigned char*>(t.raw()); }
unsigned char* bytesOf(Tensor& t) { return static_cast<unsigned char*>(t.raw()); }

// ---- Reductions ----------------------------------------------------------------------------

/// For each element of `in` (row-major), the element of the reduced result it folds into.
/// keepdims does not change these indices: a kept size-1 axis adds nothing to an offset.
struct Reduction {
  std::vector<int64_t> target;
  int64_t count = 1;  // Input elements per result element.
};

Reduction planReduction(const Shape& in, const std::vector<int64_t>& axes) {
  const int64_t rank = static_cast<int64_t>(in.size());
  std::set<int64_t> reduced;
  for (int64_t a : axes) reduced.insert(*normalizeAxis(a, rank));
  if (axes.empty())
    for (int64_t k = 0; k < rank; ++k) reduced.insert(k);

  Reduction r;
  // Strides of the result over the kept axes; a reduced axis moves nowhere in the result.
  std::vector<int64_t> outStride(in.size(), 0);
  int64_t stride = 1;
  for (int64_t k = rank - 1; k >= 0; --k) {
    if (reduced.count(k)) {
      r.count *= in[k];
    } else {
      outStride[k] = stride;
      stride *= in[k];
    }
  }
  const int64_t total = numElements(in);
  r.target.resize(static_cast<size_t>(total));
  std::vector<int64_t> pos(in.size(), 0);
  int64_t t = 0;
  for (int64_t e = 0; e < total; ++e) {
    r.target[e] = t;
    for (int64_t k = rank - 1; k >= 0; --k) {
      t += outStride[k];
      if (++pos[k] < in[k]) break;
      t -= pos[k] * outStride[k];
      pos[k] = 0;
    }
  }
  return r;
}

/// Sums accumulate in double for floats (more accurate than float32 code under test) and in
/// int64 for integers (exact as long as the result fits the dtype).
template <class T>
using SumOf = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

Status reduceSumKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  Reduction r = planReduction(x.shape(), ctx.node.ints("axes"));
  return dispatchNumeric(x.dtype(), [&]<class T>() {
    std::vector<SumOf<T>> acc(static_cast<size_t>(y.size()), 0);
    for (int64_t e = 0; e < x.size(); ++e) acc[r.target[e]] += x.data<T>()[e];
    for (int64_t i = 0; i < y.size(); ++i) y.data<T>()[i] = static_cast<T>(acc[i]);
    return Status::ok();
  });
}

Status reduceMeanKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  Reduction r = planReduction(x.shape(), ctx.node.ints("axes"));
  return dispatchFloat(x.dtype(), [&]<class T>() {
    std::vector<double> acc(static_cast<size_t>(y.size()), 0.0);
    for (int64_t e = 0; e < x.size(); ++e) acc[r.target[e]] += x.data<T>()[e];
    for (int64_t i = 0; i < y.size(); ++i)
      y.data<T>()[i] = static_cast<T>(acc[i] / double(r.count));
    return Status::ok();
  });
}

// A NaN anywhere in a reduced group makes its maximum NaN (as in NumPy): a comparison-only max
// would silently drop it, hiding the very bug the oracle is there to expose.
Status reduceMaxKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  Reduction r = planReduction(x.shape(), ctx.node.ints("axes"));
  return dispatchNumeric(x.dtype(), [&]<class T>() {
    std::vector<T> acc(static_cast<size_t>(y.size()), std::numeric_limits<T>::lowest());
    if constexpr (std::is_floating_point_v<T>)
      std::fill(acc.begin(), acc.end(), -std::numeric_limits<T>::infinity());
    for (int64_t e = 0; e < x.size(); ++e) {
      T v = x.data<T>()[e];
      T& m = acc[r.target[e]];
      if (v > m || v != v) m = v;  // Once m is NaN, no v compares greater: it stays NaN.
    }
    std::copy(acc.begin(), acc.end(), y.data<T>());
    return Status::ok();
  });
}

// ---- Data movement -------------------------------------------------------------------------

/// Copies the row-major data unchanged: reshape and flatten only relabel the dimensions, and
/// the result is already allocated with the new shape.
Status copyKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  assert(x.byteSize() == y.byteSize());
  std::memcpy(y.raw(), x.raw(), static_cast<size_t>(x.byteSize()));
  return Status::ok();
}

/// Fills `y` in row-major order from `x`: result element at position p (over y's shape) reads
/// x's element at offset + Σ_k p[k]·srcStride[k] (in elements). Transpose and slice are both
/// this with different strides and offsets.
void gatherStrided(const Tensor& x, Tensor& y, const std::vector<int64_t>& srcStride, int64_t offset) {
  const Shape& shape = y.shape();
  const int64_t rank = y.rank();
  const size_t es = static_cast<size_t>(dtypeSize(x.dtype()));
  const unsigned char* src = bytesOf(x);
  unsigned char* dst = bytesOf(y);
  std::vector<int64_t> pos(shape.size(), 0);
  int64_t s = offset;
  for (int64_t e = 0; e < y.size(); ++e) {
    std::memcpy(dst + e * es, src + s * es, es);
    for (int64_t k = rank - 1; k >= 0; --k) {
      s += srcStride[k];
      if (++pos[k] < shape[k]) break;
      s -= pos[k] * srcStride[k];
      pos[k] = 0;
    }
  }
}

// y[p] = x[p permuted back]: axis k of y is axis perm[k] of x.
Status transposeKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  std::vector<int64_t> perm = ctx.node.ints("perm");
  if (perm.empty())
    for (int64_t k = x.rank() - 1; k >= 0; --k) perm.push_back(k);
  std::vector<int64_t> inStride = stridesOf(x.shape());
  std::vector<int64_t> srcStride;
  for (int64_t p : perm) srcStride.push_back(inStride[p]);
  gatherStrided(x, *ctx.out[0], srcStride, /*offset=*/0);
  return Status::ok();
}

// Python-style bounds, clamped as in inferSlice: a negative index counts from the end, and
// anything past either end stops at it. The result's shape already holds each extent.
Status sliceKernel(KernelContext& ctx) {
  const Node& n = ctx.node;
  const Tensor& x = *ctx.in[0];
  std::vector<int64_t> starts = n.ints("starts"), axes = n.ints("axes");
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  std::vector<int64_t> inStride = stridesOf(x.shape());
  int64_t offset = 0;
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t ax = *normalizeAxis(axes[k], x.rank());
    int64_t dim = x.dim(ax), b = starts[k];
    if (b < 0) b += dim;
    offset += std::clamp<int64_t>(b, 0, dim) * inStride[ax];
  }
  gatherStrided(x, *ctx.out[0], inStride, offset);
  return Status::ok();
}

// Seen as [outer, axis * inner], the result is each operand's block of a row, side by side.
Status concatKernel(KernelContext& ctx) {
  Tensor& y = *ctx.out[0];
  const int64_t axis = *normalizeAxis(ctx.node.i("axis"), y.rank());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= y.dim(k);
  for (int64_t k = axis + 1; k < y.rank(); ++k) inner *= y.dim(k);
  const size_t es = static_cast<size_t>(dtypeSize(y.dtype()));
  unsigned char* dst = bytesOf(y);
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* x : ctx.in) {
      size_t block = static_cast<size_t>(x->dim(axis) * inner) * es;
      std::memcpy(dst, bytesOf(*x) + o * block, block);
      dst += block;
    }
  }
  return Status::ok();
}

// The output starts zeroed (tensors are allocated zero-filled); each input element lands at its
// position shifted by `before`.
Status padKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  std::vector<int64_t> before = ctx.node.ints("before");
  std::vector<int64_t> outStride = stridesOf(y.shape());
  const size_t es = static_cast<size_t>(dtypeSize(x.dtype()));
  std::vector<int64_t> pos(static_cast<size_t>(x.rank()), 0);
  for (int64_t e = 0; e < x.size(); ++e) {
    int64_t d = 0;
    for (int64_t k = 0; k < x.rank(); ++k) d += (pos[k] + before[k]) * outStride[k];
    std::memcpy(bytesOf(y) + d * es, bytesOf(x) + e * es, es);
    for (int64_t k = x.rank() - 1; k >= 0; --k) {
      if (++pos[k] < x.dim(k)) break;
      pos[k] = 0;
    }
  }
  return Status::ok();
}

}  // namespace

void registerShapeKernels(KernelTable& t) {
  t[size_t(OpKind::Pad)] = &padKernel;
  t[size_t(OpKind::ReduceSum)] = &reduceSumKernel;
  t[size_t(OpKind::ReduceMean)] = &reduceMeanKernel;
  t[size_t(OpKind::ReduceMax)] = &reduceMaxKernel;
  t[size_t(OpKind::Reshape)] = &copyKernel;
  t[size_t(OpKind::Flatten)] = &copyKernel;
  t[size_t(OpKind::Transpose)] = &transposeKernel;
  t[size_t(OpKind::Concat)] = &concatKernel;
  t[size_t(OpKind::Slice)] = &sliceKernel;
}

}  // namespace kiln
