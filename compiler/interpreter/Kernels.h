// The interpreter's kernel table and the helpers kernels share. Each Kernels*.cpp file
// registers the kernels of one family of ops; tests/OpTableTest.cpp checks that every op has one.
#pragma once

#include <array>
#include <cmath>
#include <vector>

#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"
#include "runtime/Random.h"

namespace kiln {

struct RunOptions;

/// What a kernel sees: its node (for attributes), its operands, and its results, already
/// allocated with the node's inferred types bound to the run's batch size (float32 results are
/// float64 when the interpreter runs in float64).
struct KernelContext {
  const Node& node;
  std::vector<const Tensor*> in;
  std::vector<Tensor*> out;
  uint64_t seed;  // the run's seed
  int64_t step;   // the training step (for per-step random streams)

  /// This node's random numbers at this step.
  /// (Or, with a `noise_from` attribute, the named node's: a gradient reuses its forward mask.)
  rt::RandomStream random() const {
    auto it = node.attrs().find("noise_from");
    const std::string* from = it == node.attrs().end() ? nullptr : std::get_if<std::string>(&it->second);
    return rt::RandomStream::forStep(seed, from && !from->empty() ? *from : node.name(), step);
  }
  Error error(std::string message) const { return node.error(std::move(message)); }
};

using KernelFn = Status (*)(KernelContext&);
using KernelTable = std::array<KernelFn, kNumOps>;

/// The table of all kernels (filled once from the register functions below).
const KernelTable& kernelTable();

void registerElementwiseKernels(KernelTable& t);  // KernelsElementwise.cpp
void registerNNKernels(KernelTable& t);           // KernelsNN.cpp
void registerShapeKernels(KernelTable& t);        // KernelsShape.cpp

/// Calls `f.template operator()<T>()` with T = float or double, from the dtype of a float
/// tensor. Kernels use it to be written once for both precisions.
template <class F>
Status dispatchFloat(DType dt, F&& f) {
  if (dt == DType::Float32) return f.template operator()<float>();
  if (dt == DType::Float64) return f.template operator()<double>();
  return Error::msg("internal: float kernel called on " + std::string(dtypeName(dt)));
}

/// Like dispatchFloat, for every numeric dtype (bool is rejected by shape inference).
template <class F>
Status dispatchNumeric(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    case DType::Int32: return f.template operator()<int32_t>();
    case DType::Int64: return f.template operator()<int64_t>();
    case DType::Bool: break;
  }
  return Error::msg("internal: numeric kernel called on " + std::string(dtypeName(dt)));
}

/// For broadcasting: the index into an operand of shape `in` for each element of `out`
/// (`in` is right-aligned against `out`; size-1 dimensions repeat).
std::vector<int64_t> broadcastIndex(const Shape& in, const Shape& out);

/// Numerically stable scalar helpers shared by kernels (and by tests as references).
template <class T>
T stableSigmoid(T z) {
  if (z >= 0) return T(1) / (T(1) + std::exp(-z));
  T e = std::exp(z);
  return e / (T(1) + e);
}
template <class T>
T stableSoftplus(T z) {
  // log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large z, exact for small.
  return std::max(z, T(0)) + std::log1p(std::exp(-std::abs(z)));
}

}  // namespace kiln
