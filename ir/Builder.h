// Builder: creates nodes with their types inferred on the spot, for code that writes graphs
// (the frontend's layer expansion, autodiff's gradient rules, passes). Errors are sticky: after
// the first failure every call returns null and status() tells what went wrong, so rule code
// reads as straight-line math.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "ir/Graph.h"

namespace kiln {

class Builder {
 public:
  using Attrs = std::vector<std::pair<std::string, AttrValue>>;

  explicit Builder(Graph& g) : g_(g) {}

  Graph& graph() { return g_; }
  /// New node names are `prefix + hint`, made unique.
  void setPrefix(std::string prefix) { prefix_ = std::move(prefix); }
  const std::string& prefix() const { return prefix_; }
  /// The source location given to new nodes (for diagnostics about generated nodes).
  void setLoc(SourceLoc loc) { loc_ = std::move(loc); }

  /// Creates a node of `op`, checks its attributes and infers its result types. Returns null
  /// (and records the error) on failure, or if an earlier call failed or an operand is null.
  Node* create(OpKind op, std::vector<Value*> operands, Attrs attrs = {}, std::string hint = "");
  /// create() for single-result ops.
  Value* op(OpKind op, std::vector<Value*> operands, Attrs attrs = {}, std::string hint = "");

  Value* input(const std::string& name, DType dtype, Shape shape);
  /// A parameter named exactly `name` (no prefix); init attributes go in `attrs`.
  Value* parameter(const std::string& name, Shape shape, Attrs attrs = {});
  /// A scalar constant of `dtype` (broadcasts against anything).
  Value* scalar(double v, DType dtype = DType::Float32);
  Value* constant(std::vector<double> values, Shape shape, DType dtype = DType::Float32);

  // Shorthands for the common ops.
  Value* add(Value* a, Value* b) { return op(OpKind::Add, {a, b}); }
  Value* sub(Value* a, Value* b) { return op(OpKind::Sub, {a, b}); }
  Value* mul(Value* a, Value* b) { return op(OpKind::Mul, {a, b}); }
  Value* div(Value* a, Value* b) { return op(OpKind::Div, {a, b}); }
  Value* neg(Value* a) { return op(OpKind::Neg, {a}); }
  Value* exp(Value* a) { return op(OpKind::Exp, {a}); }
  Value* square(Value* a) { return op(OpKind::Square, {a}); }
  Value* reduceSum(Value* a, std::vector<int64_t> axes, bool keepdims = false) {
    return op(OpKind::ReduceSum, {a}, {{"axes", std::move(axes)}, {"keepdims", keepdims}});
  }
  Value* reshape(Value* a, Shape shape) { return op(OpKind::Reshape, {a}, {{"shape", std::move(shape)}}); }
  Value* matmul(Value* a, Value* b, bool transposeA = false, bool transposeB = false) {
    return op(OpKind::MatMul, {a, b}, {{"transpose_a", transposeA}, {"transpose_b", transposeB}});
  }

  bool ok() const { return status_.isOk(); }
  const Status& status() const { return status_; }
  Status takeStatus() { return std::exchange(status_, Status::ok()); }

 private:
  Graph& g_;
  std::string prefix_;
  SourceLoc loc_;
  Status status_;
};

}  // namespace kiln
