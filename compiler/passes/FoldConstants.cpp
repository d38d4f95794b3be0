// fold-constants: a node whose operands are all constants is evaluated once, by the reference
// interpreter's own kernel (so folding cannot change a result the interpreter would compute),
// and replaced by a constant. Large results are left alone: a constant is stored as text in the
// graph file and as read-only data in compiled code.
#include <algorithm>
#include <cmath>

#include "compiler/interpreter/Interpreter.h"
#include "compiler/passes/Pass.h"
#include "ir/Verifier.h"

namespace kiln::passes {

namespace {

/// Folding a result bigger than this would bloat the graph more than it saves.
constexpr int64_t kMaxFoldedElements = 4096;

bool foldable(const Node& n) {
  if (n.numOperands() == 0 || isRandom(n)) return false;
  for (const Value* v : n.operands())
    if (v->node()->op() != OpKind::Constant) return false;
  for (size_t r = 0; r < n.numResults(); ++r) {
    const TensorType& t = n.result(r)->type();
    if (t.dtype == DType::Bool) return false;  // Constants hold numbers; bool has no constant form.
    for (int64_t d : t.shape)
      if (d < 0) return false;
    if (numElements(t.shape) > kMaxFoldedElements) return false;
  }
  return true;
}

/// Runs `n` alone on its constant operands through the interpreter.
Expected<std::map<std::string, Tensor>> evaluate(const Node& n) {
  Graph mini("fold");
  std::vector<Value*> operands;
  for (size_t i = 0; i < n.numOperands(); ++i) {
    const Node* c = n.operand(i)->node();
    Node* copy = mini.addNode(OpKind::Constant, "c" + std::to_string(i));
    for (const auto& [k, v] : c->attrs()) copy->setAttr(k, v);
    operands.push_back(copy->result());
  }
  Node* copy = mini.addNode(n.op(), "n", operands);
  for (const auto& [k, v] : n.attrs()) copy->setAttr(k, v);
  copy->setLoc(n.loc());
  for (size_t r = 0; r < n.numResults(); ++r)
    mini.addOutput("r" + std::to_string(r), copy->result(r));
  KILN_RETURN_IF_ERROR(verifyGraph(mini));
  Interpreter interp(mini);
  return interp.run({});
}

class FoldConstants final : public Pass {
 public:
  std::string_view name() const override { return "fold-constants"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
    bool changed = false;
    for (Node* n : order) {
      if (!foldable(*n)) continue;
      Expected<std::map<std::string, Tensor>> out = evaluate(*n);
      // A kernel error (say, an integer division by zero) is the node's to report when the
      // graph runs; folding just leaves it in place.
      if (!out) continue;
      for (size_t r = 0; r < n->numResults(); ++r) {
        Value* v = n->result(r);
        if (v->users().empty() && !isOutput(g, v)) continue;
        const Tensor& t = out->at("r" + std::to_string(r));
        std::vector<double> values(static_cast<size_t>(t.size()));
        for (int64_t i = 0; i < t.size(); ++i) values[size_t(i)] = t.getDouble(i);
        // A splat is stored as its one value (the constant's shape still says the size).
        if (std::all_of(values.begin(), values.end(), [&](double x) {
              return x == values[0] && std::signbit(x) == std::signbit(values[0]);
            }))
          values.resize(1);
        std::string base = n->name() + (r ? "_" + std::to_string(r) : "") + "/folded";
        Node* c = g.addNode(OpKind::Constant, g.uniqueName(base));
        c->setAttr("dtype", v->type().dtype);
        c->setAttr("shape", v->type().shape);
        c->setAttr("value", std::move(values));
        c->setLoc(n->loc());
        c->result()->setType(v->type());
        g.replaceAllUsesWith(v, c->result());
      }
      g.eraseNode(n);
      changed = true;
    }
    return changed;
  }

 private:
  static bool isOutput(const Graph& g, const Value* v) {
    for (const GraphOutput& o : g.outputs())
      if (o.value == v) return true;
    return false;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldConstants() { return std::make_unique<FoldConstants>(); }

}  // namespace kiln::passes
