// Helpers for the frontend tests: models from text, expansion, a structural form of graphs, and
// forward passes through the interpreter.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "TestUtil.h"
#include "frontend/Expand.h"
#include "frontend/ModelFile.h"

namespace kiln::test {

/// Parses model text (named `file` in errors) and expands it; the error text, or "" and `out`.
inline std::string expandText(const std::string& text, frontend::ExpandedModel* out,
                              frontend::Expansion mode = frontend::Expansion::Inference,
                              const std::string& file = "model.pbtxt") {
  auto pm = frontend::parseModel(text, GraphFormat::Text, file);
  if (!pm) return pm.error().str();
  auto m = frontend::expandModel(*pm, mode);
  if (!m) return m.error().str();
  *out = std::move(*m);
  return "";
}

/// The expansion of `text`; fails the test on an error.
inline frontend::ExpandedModel expandOk(const std::string& text,
                                        frontend::Expansion mode = frontend::Expansion::Inference) {
  frontend::ExpandedModel m;
  std::string err = expandText(text, &m, mode);
  EXPECT_EQ(err, "");
  return m;
}

/// The error of expanding `text` ("" if it expands).
inline std::string expandError(const std::string& text,
                               frontend::Expansion mode = frontend::Expansion::Inference) {
  frontend::ExpandedModel m;
  return expandText(text, &m, mode);
}

/// A model with input x of `shape` (one example) and the given layers and training text.
inline std::string model(const std::string& shape, const std::string& layers,
                         const std::string& training = "") {
  return "name: \"t\"\ninput { shape { " + shape + " } }\n" + layers + "\n" + training;
}

/// The graph's structure without the names of non-leaf nodes: one line per node in topological
/// order, with its op, attributes and operands (inputs and parameters by name, other nodes by
/// their position), and parameters with their shape and attributes. Two graphs with the same
/// structure compute the same function with the same parameter names.
inline std::string structure(const Graph& g) {
  auto order = g.topologicalOrder();
  if (!order) return "cycle: " + order.error().str();
  std::map<const Node*, std::string> ids;
  std::string out;
  int k = 0;
  for (Node* n : *order) {
    bool leaf = n->op() == OpKind::Input || n->op() == OpKind::Parameter;
    ids[n] = leaf ? n->name() : "#" + std::to_string(k++);
    std::string line = ids[n] + " = " + std::string(n->opName()) + "(";
    for (Value* v : n->operands()) line += ids[v->node()] + ":" + std::to_string(v->index()) + " ";
    line += ")";
    for (const auto& [name, value] : n->attrs()) line += " " + name + "=" + attrValueStr(value);
    out += line + " -> " + n->result()->type().str() + "\n";
  }
  for (const GraphOutput& o : g.outputs())
    out += "output " + o.name + " = " + ids[o.value->node()] + "\n";
  return out;
}

/// Runs `g` with parameters from `seed` on float inputs; the named output's values.
inline std::vector<double> forward(const Graph& g, const std::map<std::string, Tensor>& inputs,
                                   const std::string& output = "logits", uint64_t seed = 0) {
  Interpreter interp(g);
  Status s = interp.initializeParameters(seed);
  EXPECT_TRUE(s) << (s ? "" : s.error().str());
  auto out = interp.run(inputs);
  if (!out) {
    ADD_FAILURE() << out.error().str();
    return {};
  }
  const Tensor& t = out->at(output);
  std::vector<double> v;
  for (int64_t i = 0; i < t.size(); ++i) v.push_back(t.getDouble(i));
  return v;
}

inline Tensor floats(Shape shape, std::vector<float> v) {
  return Tensor::fromVector<float>(std::move(shape), v);
}

/// Element-wise closeness for float32 results: |a - e| <= tol * max(1, |e|).
inline void expectNear(const std::vector<double>& actual, const std::vector<double>& expected,
                       double tol = 2e-6) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], tol * std::max(1.0, std::abs(expected[i])))
        << "element " << i;
}

}  // namespace kiln::test

/// Expects `text` (evaluated once) to contain `sub`, printing both if not.
#define EXPECT_CONTAINS(text, sub)                                    \
  do {                                                                \
    std::string kilnText_ = (text);                                   \
    std::string kilnSub_ = (sub);                                     \
    EXPECT_NE(kilnText_.find(kilnSub_), std::string::npos)            \
        << "expected to find: " << kilnSub_ << "\nin: " << kilnText_; \
  } while (false)
