// cse: merges nodes that compute the same thing — same op, same operand values, same attributes
// and result types — keeping the first in topological order. The training step graph needs it:
// each parameter's optimizer update rebuilds the same scalars (1 - beta, bias corrections, ...).
// Random nodes are never merged: their draws are keyed by their own name.
#include <algorithm>
#include <map>

#include "compiler/passes/Pass.h"

namespace kiln::passes {

namespace {

/// Ops whose two operands can be swapped without changing the result (same broadcast shape
/// either way): add(a, b) and add(b, a) are one value.
bool isCommutative(OpKind op) {
  switch (op) {
    case OpKind::Add:
    case OpKind::Mul:
    case OpKind::Maximum:
    case OpKind::Minimum:
    case OpKind::Equal:
    case OpKind::NotEqual: return true;
    default: return false;
  }
}

std::string keyOf(const Node& n) {
  std::string k(n.opName());
  k += '(';
  std::vector<uintptr_t> ids;
  for (const Value* v : n.operands()) ids.push_back(reinterpret_cast<uintptr_t>(v));
  if (isCommutative(n.op())) std::sort(ids.begin(), ids.end());
  for (uintptr_t id : ids) {
    k += std::to_string(id);
    k += ',';
  }
  k += ')';
  for (const auto& [name, value] : n.attrs()) {
    // A constant's shape attribute is optional for scalars; its result type (below) says it.
    if (n.op() == OpKind::Constant && name == "shape") continue;
    k += name + '=' + attrValueStr(value) + ';';
  }
  for (size_t r = 0; r < n.numResults(); ++r) k += n.result(r)->type().str() + ';';
  return k;
}

class CommonSubexprElimination final : public Pass {
 public:
  std::string_view name() const override { return "cse"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
    std::map<std::string, Node*> seen;
    bool changed = false;
    for (Node* n : order) {
      if (n->op() == OpKind::Input || n->op() == OpKind::Parameter || isRandom(*n)) continue;
      auto [it, inserted] = seen.emplace(keyOf(*n), n);
      if (inserted) continue;
      for (size_t r = 0; r < n->numResults(); ++r)
        g.replaceAllUsesWith(n->result(r), it->second->result(r));
      g.eraseNode(n);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createCommonSubexprElimination() {
  return std::make_unique<CommonSubexprElimination>();
}

}  // namespace kiln::passes
