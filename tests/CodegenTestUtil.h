// Helpers for the code generator's tests: random inputs and parameters, and a comparison of the
// JIT-compiled graph against the reference interpreter at several batch sizes.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>

#include "TestUtil.h"
#include "compiler/codegen/Jit.h"
#include "compiler/passes/Pass.h"
#include "ir/Verifier.h"

namespace kiln::test {

/// How test inputs are drawn. Floats: normal(0, floatScale), or uniform in [0.1, 5] when
/// `positive` (log, sqrt, pow bases). Integers: uniform in [intLo, intHi], skipping 0 when
/// `nonZero` (divisors). Labels get [0, classes) by picking intLo = 0, intHi = classes - 1.
struct InputSpec {
  double floatScale = 2.0;
  bool positive = false;
  int64_t intLo = 0, intHi = 9;
  bool nonZero = false;
};

inline Tensor randomTensor(DType dt, const Shape& shape, const InputSpec& spec, std::mt19937_64& rng) {
  Tensor t(dt, shape);
  std::normal_distribution<double> normal(0.0, spec.floatScale);
  std::uniform_real_distribution<double> pos(0.1, 5.0);
  std::uniform_int_distribution<int64_t> ints(spec.intLo, spec.intHi);
  for (int64_t i = 0; i < t.size(); ++i) {
    if (isFloat(dt)) {
      t.setDouble(i, spec.positive ? pos(rng) : normal(rng));
    } else {
      int64_t v = ints(rng);
      while (spec.nonZero && v == 0) v = ints(rng);
      t.setDouble(i, double(v));
    }
  }
  return t;
}

/// The largest |got - want| / max(1, |want|) over matching elements; +inf when shapes, dtypes,
/// NaN-ness or infinities differ.
inline double scaledError(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) return INFINITY;
  double worst = 0;
  for (int64_t i = 0; i < got.size(); ++i) {
    double g = got.getDouble(i), w = want.getDouble(i);
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) return INFINITY;
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g != w) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(g - w) / std::max(1.0, std::abs(w)));
  }
  return worst;
}

/// Runs the fuse-elementwise pass on g, as every compiling command does (a graph without its
/// fusion_group attributes compiles one loop per op), so the compiled code takes the fused paths.
inline void fuse(Graph& g) {
  passes::PassContext ctx;
  auto r = passes::createFuseElementwise()->run(g, ctx);
  EXPECT_TRUE(r) << r.error().str();
  Status v = verifyGraph(g);
  EXPECT_TRUE(v) << v.error().str();
}

/// Loops a graph compiled without fusion runs: one per node that computes a value reaching an
/// output (dead code is not emitted).
inline int oneLoopPerOp(const Graph& g) {
  auto order = g.topologicalOrder();
  EXPECT_TRUE(order) << order.error().str();
  if (!order) return -1;
  std::set<const Value*> needed;
  for (const GraphOutput& o : g.outputs()) needed.insert(o.value);
  int loops = 0;
  for (auto it = order->rbegin(); it != order->rend(); ++it) {
    bool live = false;
    for (size_t r = 0; r < (*it)->numResults(); ++r) live |= needed.count((*it)->result(r)) != 0;
    if (!live) continue;
    for (Value* v : (*it)->operands()) needed.insert(v);
    loops += (*it)->def().fusion != FusionClass::Leaf;
  }
  return loops;
}

/// Fuses g (fuse above), compiles it with the JIT and runs it and the interpreter on the same random inputs and
/// parameters at each batch size; every output must agree within `tol` (scaledError). Returns
/// the largest error seen (for reports). Parameters get random values (those named *variance
/// in [0.5, 0.8]), or with `useInitializers` their own initializers: deep models with arbitrary
/// weights blow activations up to 1e12, where float32 cancellation, not the compiler, dominates.
inline double expectMatchesInterpreter(Graph& g, double tol, const std::map<std::string, InputSpec>& specs = {},
                                       std::vector<int64_t> batches = {1, 7}, uint64_t seed = 1,
                                       bool useInitializers = false, const codegen::JitOptions& opts = {}) {
  Status v = verifyGraph(g);
  EXPECT_TRUE(v) << v.error().str();
  if (!v) return INFINITY;
  fuse(g);
  auto jit = codegen::JitGraph::compile(g, opts);
  EXPECT_TRUE(jit) << jit.error().str();
  if (!jit) return INFINITY;
  std::mt19937_64 rng(seed);
  Interpreter interp(g);
  if (useInitializers) {
    Status s = interp.initializeParameters(seed);
    EXPECT_TRUE(s) << s.error().str();
  }
  for (Node* p : useInitializers ? std::vector<Node*>{} : g.parameters()) {
    const TensorType& t = p->result()->type();
    InputSpec spec;
    spec.floatScale = 0.5;
    bool variance = p->name().find("variance") != std::string::npos;
    spec.positive = variance;
    Tensor value = randomTensor(t.dtype, t.shape, spec, rng);
    if (variance)
      for (int64_t i = 0; i < value.size(); ++i) value.setDouble(i, 0.5 + value.getDouble(i) * 0.3);
    Status s = interp.setParameter(p->name(), value);
    EXPECT_TRUE(s) << s.error().str();
  }
  double worst = 0;
  for (int64_t batch : batches) {
    std::map<std::string, Tensor> inputs;
    for (Node* in : g.inputs()) {
      auto it = specs.find(in->name());
      const TensorType& t = in->result()->type();
      inputs[in->name()] = randomTensor(t.dtype, bindBatch(t.shape, batch), it == specs.end() ? InputSpec{} : it->second, rng);
    }
    auto want = interp.run(inputs);
    EXPECT_TRUE(want) << want.error().str();
    auto got = (*jit)->run(inputs, interp.parameters());
    EXPECT_TRUE(got) << got.error().str();
    if (!want || !got) return INFINITY;
    for (const GraphOutput& o : g.outputs()) {
      double err = scaledError(got->at(o.name), want->at(o.name));
      worst = std::max(worst, err);
      EXPECT_LE(err, tol) << "graph '" << g.name() << "' output '" << o.name << "' at batch " << batch
                          << "\n  jit:         " << got->at(o.name).str(12)
                          << "\n  interpreter: " << want->at(o.name).str(12);
    }
  }
  return worst;
}

}  // namespace kiln::test
