// Helpers for the pass tests: random inputs and parameters, and the interpreter run of two
// graphs (before and after a pass) on the same values.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "compiler/interpreter/Interpreter.h"

namespace kiln::test {

/// Random values for every input (batch `batch`) and parameter of `g`. Matrices are drawn in
/// +-1/sqrt(rows) (so 20 layers deep stay finite; non-trainable ones in [0, 1/sqrt(rows)]); vectors
/// and scalars in [0.5, 1.5] (positive, so they can stand for variances); float inputs in [-2, 2],
/// integer inputs (labels) 0 or 1.
inline void randomBindings(const Graph& g, uint64_t seed, int64_t batch,
                           std::map<std::string, Tensor>& inputs,
                           std::map<std::string, Tensor>& params) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> in(-2, 2), pos(0.5, 1.5);
  for (Node* n : g.inputs()) {
    Shape s = n->result()->type().shape;
    for (int64_t& d : s)
      if (d < 0) d = batch;
    Tensor t(n->result()->type().dtype, s);
    for (int64_t i = 0; i < t.size(); ++i)
      t.setDouble(i, t.dtype() == DType::Float32 || t.dtype() == DType::Float64
                         ? in(rng)
                         : double(rng() % 2));
    inputs[n->name()] = t;
  }
  for (Node* p : g.parameters()) {
    Tensor t(p->result()->type().dtype, p->result()->type().shape);
    const Shape& s = t.shape();
    double a = s.size() >= 2 ? 1 / std::sqrt(double(s[0])) : 0;
    // Non-trainable state (optimizer slots such as Adam's second moments, moving variances) must
    // be non-negative; trainable matrices are symmetric around zero.
    std::uniform_real_distribution<double> sym(p->b("trainable") ? -a : 0, a);
    for (int64_t i = 0; i < t.size(); ++i) t.setDouble(i, s.size() >= 2 ? sym(rng) : pos(rng));
    params[p->name()] = t;
  }
}

/// Runs both graphs on the same random values and expects equal outputs (by output name) up to
/// float32 rounding of a few operations: |a - b| <= 1e-5 * (1 + |a|).
inline void expectSameOutputs(const Graph& before, const Graph& after, uint64_t seed,
                              int64_t batch) {
  std::map<std::string, Tensor> inputs, params;
  randomBindings(before, seed, batch, inputs, params);
  auto run = [&](const Graph& g) -> std::map<std::string, Tensor> {
    Interpreter interp(g);
    for (Node* p : g.parameters()) {
      auto it = params.find(p->name());
      if (it == params.end()) {
        ADD_FAILURE() << "parameter " << p->name() << " is new";
        return {};
      }
      EXPECT_TRUE(interp.setParameter(p->name(), it->second).isOk());
    }
    auto out = interp.run(inputs);
    if (!out) {
      ADD_FAILURE() << out.error().str();
      return {};
    }
    return *out;
  };
  auto a = run(before), b = run(after);
  ASSERT_EQ(a.size(), b.size());
  for (auto& [name, ta] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const Tensor& tb = b.at(name);
    ASSERT_EQ(ta.shape(), tb.shape()) << name;
    ASSERT_EQ(ta.dtype(), tb.dtype()) << name;
    int bad = 0;
    for (int64_t i = 0; i < ta.size(); ++i) {
      double x = ta.getDouble(i), y = tb.getDouble(i);
      // A non-finite reference would make the comparison vacuous: the bindings are to blame.
      if (!std::isfinite(x) && bad++ < 5)
        ADD_FAILURE() << name << "[" << i << "] is " << x << " before the pass";
      if (!(std::abs(x - y) <= 1e-5 * (1 + std::abs(x))) && bad++ < 5)
        ADD_FAILURE() << name << "[" << i << "]: before " << x << ", after " << y;
    }
  }
}

}  // namespace kiln::test
