// dce: removes every node none of whose results reaches a graph output. Inputs and parameters
// stay: they are the graph's interface (callers bind them by name), even when unused.
#include <set>

#include "compiler/passes/Pass.h"

namespace kiln::passes {

namespace {

class DeadCodeElimination final : public Pass {
 public:
  std::string_view name() const override { return "dce"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
    std::set<const Node*> live;
    for (const GraphOutput& o : g.outputs()) live.insert(o.value->node());
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = *it;
      if (n->op() == OpKind::Input || n->op() == OpKind::Parameter) live.insert(n);
      if (!live.count(n)) continue;
      for (Value* v : n->operands()) live.insert(v->node());
    }
    // Users before their operands, so every erased node has no users left.
    bool changed = false;
    for (auto it = order.rbegin(); it != order.rend(); ++it)
      if (!live.count(*it)) {
        g.eraseNode(*it);
        changed = true;
      }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createDeadCodeElimination() {
  return std::make_unique<DeadCodeElimination>();
}

}  // namespace kiln::passes
