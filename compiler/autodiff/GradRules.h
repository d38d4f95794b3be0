// Gradient rules: for each op, how to build the gradients of its operands from the gradients
// of its results. One table indexed by OpKind, filled by the GradRules*.cpp files; the autodiff
// pass (Autodiff.h) combines them. tests/OpTableTest.cpp checks every op has a rule or is
// declared not differentiable.
#pragma once

#include <array>
#include <vector>

#include "ir/Builder.h"
#include "ir/Graph.h"

namespace kiln {

/// What a rule sees. Rules emit nodes through `b` (whose errors are sticky) and may reuse the
/// forward node's operands and results.
struct GradContext {
  Builder& b;
  const Node& node;
  /// d loss / d result i, or null where no gradient reaches that result (treat it as zero).
  std::vector<Value*> outGrads;
  /// Whether operand i's gradient is needed; rules may skip the others.
  std::vector<bool> wanted;

  Value* x(size_t i = 0) const { return node.operand(i); }
  Value* y(size_t i = 0) const { return node.result(i); }
  Value* g(size_t i = 0) const { return outGrads[i]; }
  bool want(size_t i) const { return i < wanted.size() && wanted[i]; }
  DType dtype() const { return node.result(0)->type().dtype; }
  /// A scalar constant of the node's float dtype.
  Value* c(double v) const { return b.scalar(v, dtype()); }
};

/// Returns one gradient per operand (null: none, e.g. not wanted or not differentiable in it).
using GradFn = std::vector<Value*> (*)(GradContext&);

struct GradRule {
  GradFn fn = nullptr;
  /// True for ops with no gradient by nature (argmax, comparisons, accuracy): reaching one on
  /// the way to a parameter is an error naming it; a rule-less op that is not marked is a bug.
  bool notDifferentiable = false;
};
using GradTable = std::array<GradRule, kNumOps>;

const GradTable& gradTable();

void registerElementwiseGrads(GradTable& t);  // GradRulesElementwise.cpp
void registerNNGrads(GradTable& t);           // GradRulesNN.cpp
void registerShapeGrads(GradTable& t);        // GradRulesShape.cpp
void registerMiscGrads(GradTable& t);         // GradRulesMisc.cpp

/// Sums `grad` (the shape of a broadcast result) down to `shape` (one operand's shape), as a
/// broadcasting op's gradient needs: reduce the leading axes and the size-1 axes it grew.
Value* unbroadcast(Builder& b, Value* grad, const Shape& shape);

}  // namespace kiln
