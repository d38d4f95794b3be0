// The in-memory graph the compiler works on: nodes with operand and user lists, each result an
// SSA value with a tensor type.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ir/OpTable.h"
#include "ir/Support.h"
#include "ir/Types.h"

namespace kiln {

class Node;

/// An attribute value; the alternative matches AttrType.
using AttrValue = std::variant<int64_t, double, std::string, bool, std::vector<int64_t>,
                               std::vector<double>, DType>;
AttrType attrValueType(const AttrValue& v);
std::string attrValueStr(const AttrValue& v);

/// One result of a node. `type` is filled in by shape inference (the verifier).
class Value {
 public:
  Node* node() const { return node_; }
  unsigned index() const { return index_; }
  /// The tensor name: the node's name for result 0, "node:i" otherwise.
  std::string name() const;
  const TensorType& type() const { return type_; }
  void setType(TensorType t) { type_ = std::move(t); }
  /// Each user once per operand slot that reads this value (a node reading it twice is listed twice).
  const std::vector<Node*>& users() const { return users_; }

 private:
  friend class Node;
  friend class Graph;
  Value(Node* n, unsigned i) : node_(n), index_(i) {}
  Node* node_;
  unsigned index_;
  TensorType type_;
  std::vector<Node*> users_;
};

class Node {
 public:
  OpKind op() const { return op_; }
  const OpDef& def() const { return opDef(op_); }
  std::string_view opName() const { return def().name; }
  const std::string& name() const { return name_; }
  const SourceLoc& loc() const { return loc_; }
  void setLoc(SourceLoc l) { loc_ = std::move(l); }

  size_t numOperands() const { return operands_.size(); }
  Value* operand(size_t i) const { return operands_[i]; }
  const std::vector<Value*>& operands() const { return operands_; }
  /// Replaces operand i, keeping the user lists right.
  void setOperand(size_t i, Value* v);
  void appendOperand(Value* v);

  size_t numResults() const { return results_.size(); }
  Value* result(size_t i = 0) const { return results_[i].get(); }

  const std::map<std::string, AttrValue>& attrs() const { return attrs_; }
  bool hasAttr(std::string_view n) const { return attrs_.count(std::string(n)) != 0; }
  void setAttr(std::string n, AttrValue v) { attrs_[std::move(n)] = std::move(v); }
  void eraseAttr(std::string_view n) { attrs_.erase(std::string(n)); }

  // Typed accessors: the value set on the node, else the op table's default. They require a
  // verified node (the attribute exists in the op table with this type).
  double f(std::string_view n) const;
  int64_t i(std::string_view n) const;
  bool b(std::string_view n) const;
  std::string s(std::string_view n) const;
  DType dtype(std::string_view n) const;
  std::vector<int64_t> ints(std::string_view n) const;
  std::vector<double> floats(std::string_view n) const;

  /// A diagnostic about this node at its source location.
  Diagnostic diag(std::string message) const;
  Error error(std::string message) const { return Error(diag(std::move(message))); }

 private:
  friend class Graph;
  Node(OpKind op, std::string name) : op_(op), name_(std::move(name)) {}
  OpKind op_;
  std::string name_;
  SourceLoc loc_;
  std::vector<Value*> operands_;
  std::vector<std::unique_ptr<Value>> results_;
  std::map<std::string, AttrValue> attrs_;
};

/// The one attribute every op may carry: `fusion_group: <int >= 0>`, written by the
/// fuse-elementwise pass (compiler/passes/FuseElementwise.cpp). Nodes with the same group run as
/// one loop in compiled code; the interpreter ignores it. It is not in the op table because it
/// says how a node is compiled, not what it computes.
inline constexpr std::string_view kFusionGroupAttr = "fusion_group";
/// The node's fusion group, or -1 when it has none (or a malformed one the verifier rejects).
int64_t fusionGroup(const Node& n);

struct GraphOutput {
  std::string name;
  Value* value;
};

class Graph {
 public:
  explicit Graph(std::string name = "") : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }
  void setName(std::string n) { name_ = std::move(n); }
  /// The file this graph was read from (for diagnostics), if any.
  const std::string& sourceFile() const { return sourceFile_; }
  void setSourceFile(std::string f) { sourceFile_ = std::move(f); }

  /// Creates a node with the op table's number of results. The name must be new.
  Node* addNode(OpKind op, std::string name, std::vector<Value*> operands = {});
  /// Removes a node that has no users left.
  void eraseNode(Node* n);
  void replaceAllUsesWith(Value* from, Value* to);

  /// Nodes in creation order (inputs and parameters first when read from a file).
  std::vector<Node*> nodes() const;
  Node* findNode(std::string_view name) const;
  /// Resolves "node" or "node:i"; null if there is no such tensor.
  Value* findValue(std::string_view tensorName) const;

  std::vector<Node*> inputs() const;      // OpKind::Input nodes, in order
  std::vector<Node*> parameters() const;  // OpKind::Parameter nodes, in order

  const std::vector<GraphOutput>& outputs() const { return outputs_; }
  void addOutput(std::string name, Value* v) { outputs_.push_back({std::move(name), v}); }
  void setOutput(size_t i, Value* v) { outputs_[i].value = v; }
  void clearOutputs() { outputs_.clear(); }

  /// Nodes ordered so that every operand comes before its users; an error naming a node on the
  /// cycle if there is one.
  Expected<std::vector<Node*>> topologicalOrder() const;

  /// A name not used by any node, built from `base`.
  std::string uniqueName(std::string_view base) const;

 private:
  std::string name_;
  std::string sourceFile_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::string, Node*, std::less<>> byName_;
  std::vector<GraphOutput> outputs_;
};

}  // namespace kiln
