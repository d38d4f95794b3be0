// Gradient checking by central finite differences in float64, with the reference interpreter
// as the oracle: the loss is sum_k <w_k, output_k> for fixed random weights w_k, so every
// output element's gradient matters and none cancels by symmetry.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "TestUtil.h"
#include "compiler/autodiff/Autodiff.h"
#include "ir/Builder.h"

namespace kiln::test {

struct GradCheckResult {
  double maxRelError = 0;  // max over elements of |analytic - numeric| / max(1, |numeric|)
  double maxAbsGrad = 0;   // guards against an all-zero gradient
};

/// Random float64 tensor with entries in [lo, hi], optionally kept at least `gap` away from
/// each point in `avoid` (kinks such as relu's 0).
inline Tensor randomTensor(Shape shape, uint32_t seed, double lo = -2, double hi = 2,
                           std::vector<double> avoid = {}, double gap = 0.05) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  Tensor t(DType::Float64, std::move(shape));
  for (int64_t i = 0; i < t.size(); ++i) {
    double v;
    bool ok;
    do {
      v = u(rng);
      ok = true;
      for (double a : avoid) ok &= std::abs(v - a) >= gap;
    } while (!ok);
    t.data<double>()[i] = v;
  }
  return t;
}

/// Differentiates the graph in `text` (static shapes; its float outputs are combined into the
/// loss) with respect to the named inputs, and compares every gradient element with central
/// differences. Inputs must be float64 tensors for the wrt names; others as the graph needs.
inline GradCheckResult checkGradient(const std::string& text, const std::map<std::string, Tensor>& inputs,
                                     const std::vector<std::string>& wrt, double tolerance = 1e-6,
                                     RunOptions opts = {}) {
  GradCheckResult res;
  opts.precision = Precision::Float64;
  auto g = parseVerified(text, "gradcheck.pbtxt");
  if (!g) return res;
  // loss = sum_k reduce_sum(output_k * w_k)
  Builder b(*g);
  Value* loss = nullptr;
  uint32_t seed = 1000;
  std::vector<GraphOutput> outs = g->outputs();
  for (const GraphOutput& o : outs) {
    const TensorType& t = o.value->type();
    if (!isFloat(t.dtype)) continue;
    if (hasBatchDim(t.shape)) {
      ADD_FAILURE() << "gradient checks need static shapes, output " << o.name << " is " << t.str();
      return res;
    }
    Tensor w = randomTensor(t.shape, seed++, 0.5, 1.5);
    std::vector<double> wv(w.data<double>(), w.data<double>() + w.size());
    Value* wc = b.constant(wv, t.shape, t.dtype);
    Value* term = b.reduceSum(b.mul(o.value, wc), {});
    loss = loss ? b.add(loss, term) : term;
  }
  if (!b.ok() || !loss) {
    ADD_FAILURE() << "building the loss failed: " << (b.ok() ? "no float output" : b.status().error().str());
    return res;
  }
  std::vector<Value*> wrtValues;
  for (const std::string& name : wrt) {
    Value* v = g->findValue(name);
    if (!v) {
      ADD_FAILURE() << "no value named " << name;
      return res;
    }
    wrtValues.push_back(v);
  }
  auto grads = differentiate(*g, loss, wrtValues);
  if (!grads) {
    ADD_FAILURE() << grads.error().str();
    return res;
  }
  g->clearOutputs();
  g->addOutput("loss", loss);
  for (size_t i = 0; i < wrt.size(); ++i) {
    if (!grads->grads[i]) {
      ADD_FAILURE() << "no gradient reaches " << wrt[i];
      return res;
    }
    g->addOutput("grad:" + wrt[i], grads->grads[i]);
  }
  Status s = verifyGraph(*g);
  if (!s) {
    ADD_FAILURE() << "the differentiated graph does not verify:\n" << s.error().str() << "\n" << graphToText(*g);
    return res;
  }
  Interpreter interp(*g);
  auto analytic = interp.run(inputs, opts);
  if (!analytic) {
    ADD_FAILURE() << analytic.error().str();
    return res;
  }
  for (const std::string& name : wrt) {
    const Tensor& a = analytic->at("grad:" + name);
    const Tensor& x0 = inputs.at(name);
    for (int64_t i = 0; i < x0.size(); ++i) {
      std::map<std::string, Tensor> in = inputs;
      double x = x0.getDouble(i), h = 1e-6 * std::max(1.0, std::abs(x));
      in[name].setDouble(i, x + h);
      auto plus = interp.run(in, opts);
      in[name].setDouble(i, x - h);
      auto minus = interp.run(in, opts);
      if (!plus || !minus) {
        ADD_FAILURE() << "forward run failed";
        return res;
      }
      double numeric = (plus->at("loss").getDouble(0) - minus->at("loss").getDouble(0)) / (2 * h);
      double got = a.getDouble(i);
      double err = std::abs(got - numeric) / std::max(1.0, std::abs(numeric));
      res.maxRelError = std::max(res.maxRelError, err);
      res.maxAbsGrad = std::max(res.maxAbsGrad, std::abs(got));
      EXPECT_LE(err, tolerance) << "d loss / d " << name << "[" << i << "]: analytic " << got
                                << ", numeric " << numeric;
    }
  }
  EXPECT_GT(res.maxAbsGrad, 1e-8) << "the gradient is all zeros";
  return res;
}

}  // namespace kiln::test

namespace kiln::test {
/// Prints one line per check, `GRADCHECK <op> <variant> max_rel_error=<e>`, so a run of the
/// suite lists every op's gradient-check error (grep GRADCHECK).
inline void reportGradCheck(const std::string& op, const std::string& variant, const GradCheckResult& r) {
  std::printf("GRADCHECK %-32s %-24s max_rel_error=%.3g\n", op.c_str(), variant.c_str(), r.maxRelError);
}
}  // namespace kiln::test
