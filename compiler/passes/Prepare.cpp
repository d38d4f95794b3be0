// hoistParameterMath / prepareParameters: see Prepare.h.
#include "compiler/passes/Prepare.h"

#include <set>

#include "compiler/interpreter/Interpreter.h"
#include "compiler/passes/Pass.h"
#include "ir/Verifier.h"

namespace kiln::passes {

Expected<std::unique_ptr<Graph>> hoistParameterMath(Graph& g) {
  KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
  // Static: parameters, constants, and deterministic nodes reading only static values.
  std::set<const Node*> isStatic;
  for (Node* n : order) {
    bool s = n->op() == OpKind::Parameter || n->op() == OpKind::Constant;
    if (!s && n->op() != OpKind::Input && n->numOperands() > 0 && !isRandom(*n)) {
      s = true;
      for (Value* v : n->operands()) s &= isStatic.count(v->node()) != 0;
    }
    if (s) isStatic.insert(n);
  }
  auto isLeaf = [](const Node* n) {
    return n->op() == OpKind::Parameter || n->op() == OpKind::Constant;
  };
  // The boundary: static computed values read by run-time nodes or returned.
  std::vector<Value*> boundary;
  std::set<const Value*> inBoundary;
  auto consider = [&](Value* v) {
    if (isStatic.count(v->node()) && !isLeaf(v->node()) && inBoundary.insert(v).second)
      boundary.push_back(v);
  };
  for (Node* n : order)
    if (!isStatic.count(n))
      for (Value* v : n->operands()) consider(v);
  for (const GraphOutput& o : g.outputs()) consider(o.value);

  auto prepare = std::make_unique<Graph>(g.name() + "_prepare");
  prepare->setSourceFile(g.sourceFile());
  if (boundary.empty()) return prepare;

  // Copy what the boundary needs, in topological order.
  std::set<const Node*> needed;
  for (Value* v : boundary) needed.insert(v->node());
  for (auto it = order.rbegin(); it != order.rend(); ++it)
    if (needed.count(*it))
      for (Value* v : (*it)->operands()) needed.insert(v->node());
  std::map<const Value*, Value*> copyOf;
  for (Node* n : order) {
    if (!needed.count(n)) continue;
    std::vector<Value*> operands;
    for (Value* v : n->operands()) operands.push_back(copyOf.at(v));
    Node* c = prepare->addNode(n->op(), n->name(), operands);
    for (const auto& [k, v] : n->attrs()) c->setAttr(k, v);
    c->setLoc(n->loc());
    for (size_t r = 0; r < n->numResults(); ++r) copyOf[n->result(r)] = c->result(r);
  }

  // Replace each boundary value in `g` by a new parameter that the prepare graph computes.
  for (Value* v : boundary) {
    std::string base =
        v->node()->name() + (v->index() ? "_" + std::to_string(v->index()) : "") + "/prepared";
    Node* p = g.addNode(OpKind::Parameter, g.uniqueName(base));
    p->setAttr("shape", v->type().shape);
    p->setAttr("dtype", v->type().dtype);
    p->setAttr("trainable", false);
    p->setAttr("init", std::string("zeros"));
    p->setLoc(v->node()->loc());
    p->result()->setType(v->type());
    prepare->addOutput(p->name(), copyOf.at(v));
    g.replaceAllUsesWith(v, p->result());
  }
  // The hoisted nodes and the parameters only they read are gone from `g`.
  PassContext ctx;
  KILN_RETURN_IF_ERROR(createDeadCodeElimination()->run(g, ctx).status());
  for (Node* p : g.parameters())
    if (p->result()->users().empty() &&
        !std::any_of(g.outputs().begin(), g.outputs().end(),
                     [&](const GraphOutput& o) { return o.value == p->result(); }))
      g.eraseNode(p);
  KILN_RETURN_IF_ERROR(verifyGraph(g));
  KILN_RETURN_IF_ERROR(verifyGraph(*prepare));
  return prepare;
}

Expected<std::map<std::string, Tensor>> prepareParameters(
    const Graph& prepare, const Graph& main, const std::map<std::string, Tensor>& params) {
  std::map<std::string, Tensor> out;
  if (!prepare.outputs().empty()) {
    Interpreter interp(prepare);
    for (Node* p : prepare.parameters()) {
      auto it = params.find(p->name());
      if (it == params.end())
        return p->error("parameter has no value (the prepare graph reads it)");
      KILN_RETURN_IF_ERROR(interp.setParameter(p->name(), it->second));
    }
    KILN_ASSIGN_OR_RETURN(out, interp.run({}));
  }
  for (Node* p : main.parameters()) {
    if (out.count(p->name())) continue;
    auto it = params.find(p->name());
    if (it == params.end()) return p->error("parameter has no value");
    out[p->name()] = it->second;
  }
  return out;
}

}  // namespace kiln::passes
