// fuse-elementwise: decides which nodes compiled code runs as one loop (TVM's fusion lattice over
// the op table's fusion classes) and records it in the graph as `fusion_group` attributes, so the
// decision shows in `kiln opt` output and golden files and can be turned off by name
// (--disable-pass fuse-elementwise). The code generator (compiler/codegen/MemoryPlan.cpp)
// follows the attributes; a graph without them compiles one loop per op.
#include <algorithm>
#include <map>

#include "compiler/passes/Fusion.h"
#include "compiler/passes/Pass.h"

namespace kiln::passes {

bool readsOperandsInOnePass(const Node& n) {
  if (n.op() == OpKind::BatchNorm) return !n.b("training");
  switch (n.op()) {
    case OpKind::MatMul:
    case OpKind::Softmax:
    case OpKind::LogSoftmax:
    case OpKind::SparseSoftmaxCrossEntropy:
    case OpKind::Accuracy:
      return false;
    default:
      return true;
  }
}

bool fusesIntoReader(const Node& n) {
  if (n.op() == OpKind::BatchNorm) return !n.b("training");
  FusionClass c = n.def().fusion;
  return c == FusionClass::Elementwise || c == FusionClass::Broadcast;
}

std::set<const Value*> outputValues(const Graph& g) {
  std::set<const Value*> out;
  for (const GraphOutput& o : g.outputs()) out.insert(o.value);
  return out;
}

std::string whyNotFused(const Value& v, const std::set<const Value*>& outputs) {
  const Node& n = *v.node();
  if (!fusesIntoReader(n))
    return std::string(n.opName()) + " is not elementwise (fusion class " +
           std::string(fusionClassName(n.def().fusion)) + ")";
  if (outputs.count(&v)) return "'" + v.name() + "' is a graph output";
  if (v.users().empty()) return "'" + v.name() + "' has no reader";
  for (const Node* user : v.users()) {
    if (!readsOperandsInOnePass(*user))
      return "its reader '" + user->name() + "' (" + std::string(user->opName()) +
             ") reads its operands more than once or from memory";
    FusionClass uc = user->def().fusion;
    if ((uc == FusionClass::Elementwise || uc == FusionClass::Broadcast) &&
        v.type().shape != user->result(0)->type().shape)
      return "its reader '" + user->name() + "' broadcasts it from " + shapeStr(v.type().shape) +
             " to " + shapeStr(user->result(0)->type().shape);
  }
  return "";
}

namespace {

/// Whether computing an element of n (its own loop's node, or a value inlined into it) reads the
/// product c. Clears `ok` when some path reads c at another index than the one computed: a
/// row block's epilogue may only read that block's rows. Records each node of n's inline tree
/// in `tree` with its answer: an inlined value with several readers in the loop is a shared
/// subtree, answered once, so chains of them cost linear time (its ok was settled then).
bool readsProduct(const Node& n, const Value* c, const std::set<const Value*>& inlined,
                  std::map<const Node*, bool>& tree, bool& ok) {
  if (auto seen = tree.find(&n); seen != tree.end()) return seen->second;
  tree[&n] = false;  // a graph is acyclic: only reached again after the answer below
  bool reads = false;
  for (unsigned k = 0; k < n.numOperands(); ++k) {
    const Value* o = n.operand(k);
    bool r = o == c;
    if (!r && inlined.count(o) && o->node()->op() != OpKind::Constant)
      r = readsProduct(*o->node(), c, inlined, tree, ok);
    if (!r) continue;
    reads = true;
    // Same shape in and out, and an op that reads its operand at the index it computes:
    // elementwise and broadcasting ops do when the operand has the result's shape (inference
    // batch norm: x is operand 0, its parameters are per feature); injective ones (transpose,
    // reshape, slice) move elements.
    FusionClass fc = n.def().fusion;
    bool sameIndex = n.op() == OpKind::BatchNorm
                         ? k == 0 && !n.b("training")
                         : fc == FusionClass::Elementwise || fc == FusionClass::Broadcast;
    // o is c or an inlined value computed at this same index, so it has n's result's shape
    // (n's own stored results are checked by the caller).
    if (!sameIndex || o->type().shape != c->type().shape) ok = false;
  }
  tree[&n] = reads;
  return reads;
}

}  // namespace

std::string whyNotEpilogue(const Node& mm, const Node& e, const std::set<const Value*>& inlined,
                           const std::set<const Value*>& outputs) {
  const Value* c = mm.result();
  if (mm.op() != OpKind::MatMul) return "'" + mm.name() + "' is not a matmul";
  if (!isFloat(c->type().dtype)) return "the product '" + c->name() + "' is not floating-point";
  bool elemental = e.op() == OpKind::BatchNorm ? !e.b("training")
                                               : e.def().fusion == FusionClass::Elementwise ||
                                                     e.def().fusion == FusionClass::Broadcast;
  if (!elemental) return "'" + e.name() + "' (" + std::string(e.opName()) + ") is not elementwise";
  bool ok = true;
  for (size_t r = 0; r < e.numResults(); ++r) {
    const Value* v = e.result(r);
    if (!inlined.count(v) && (outputs.count(v) || !v->users().empty()))
      ok &= v->type().shape == c->type().shape;
  }
  if (!ok) return "'" + e.name() + "' stores a result of another shape than the product";
  std::map<const Node*, bool> tree;
  if (!readsProduct(e, c, inlined, tree, ok))
    return "'" + e.name() + "' does not read the product '" + c->name() + "'";
  if (!ok) return "'" + e.name() + "' reads the product at another index than it computes";
  for (const Node* u : c->users())
    if (!tree.count(u))
      return "the product '" + c->name() + "' is also read by '" + u->name() + "', outside the loop of '" +
             e.name() + "'";
  for (size_t r = 0; r < e.numResults(); ++r) {
    if (!outputs.count(e.result(r))) continue;
    for (const Value* o : mm.operands())
      if (o->node()->op() == OpKind::Parameter && o->type() == e.result(r)->type())
        return "'" + e.result(r)->name() + "' may be written over the parameter '" + o->name() +
               "' the matmul reads";
  }
  return "";
}

namespace {

class FuseElementwise : public Pass {
 public:
  std::string_view name() const override { return "fuse-elementwise"; }

  Expected<bool> run(Graph& g, PassContext&) override {
    KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
    std::map<const Node*, int64_t> before;
    for (Node* n : order)
      if (n->hasAttr(kFusionGroupAttr)) before[n] = fusionGroup(*n);
    // The groups are recomputed from scratch, so running the pass again (after other passes
    // changed the graph) never keeps a stale decision.
    for (Node* n : order) n->eraseAttr(kFusionGroupAttr);

    const std::set<const Value*> outputs = outputValues(g);
    // Values that reach an output (the code generator emits nothing else).
    std::set<const Value*> needed = outputs;
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      bool live = false;
      for (size_t r = 0; r < (*it)->numResults(); ++r) live |= needed.count((*it)->result(r)) != 0;
      if (live)
        for (Value* v : (*it)->operands()) needed.insert(v);
    }

    // Union-find over nodes: a fused value joins its node to its reader's group.
    std::map<const Node*, const Node*> parent;
    auto find = [&](const Node* n) {
      while (parent.count(n) && parent[n] != n) n = parent[n];
      return n;
    };
    auto unite = [&](const Node* a, const Node* b) {
      const Node *ra = find(a), *rb = find(b);
      parent[ra] = ra;
      parent[rb] = rb;
      if (ra != rb) parent[ra] = rb;
    };

    // The node whose loop computes n: n itself, or the loop its inlined result is computed in.
    std::set<const Value*> inlined;
    auto loopOf = [&](const Node* n) {
      for (bool moved = true; moved;) {
        moved = false;
        for (size_t r = 0; r < n->numResults(); ++r)
          if (inlined.count(n->result(r))) {
            n = n->result(r)->users().front();
            moved = true;
            break;
          }
      }
      return n;
    };

    // 1. Producers computed inside their readers' loop. Constants are read in place by the code
    // generator whatever the groups say, so they are never annotated. A value with several
    // readers is inlined when they all lie in one loop (as swish's backward reads sigmoid(x)
    // three times): the code generator computes it once per element there. Readers come later
    // in topological order, so walking backwards settles their loops first.
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = *it;
      if (n->def().fusion == FusionClass::Leaf) continue;
      for (size_t r = 0; r < n->numResults(); ++r) {
        const Value* v = n->result(r);
        if (!needed.count(v) || !whyNotFused(*v, outputs).empty()) continue;
        const Node* loop = loopOf(v->users().front());
        if (!std::all_of(v->users().begin(), v->users().end(),
                         [&](const Node* u) { return loopOf(u) == loop; }))
          continue;
        inlined.insert(v);
        for (const Node* u : v->users()) unite(n, u);
      }
    }

    // 2. Matmul epilogues: the loop every reader of the product lies in (through inlined values)
    // runs over each row block of the product. When several products feed one loop, the last
    // one in topological order is paired: the code generator runs an epilogue with the matmul
    // right before it.
    std::map<const Node*, const Node*> epilogueOf;  // loop root -> its matmul
    for (Node* mm : order) {
      if (mm->op() != OpKind::MatMul || !needed.count(mm->result()) || mm->result()->users().empty())
        continue;
      const Node* e = loopOf(mm->result()->users().front());
      if (whyNotEpilogue(*mm, *e, inlined, outputs).empty()) epilogueOf[e] = mm;
    }
    for (const auto& [e, mm] : epilogueOf) unite(mm, e);

    // 3. Group ids in topological order of each group's first node; single nodes get none.
    std::map<const Node*, int> size;
    for (Node* n : order) ++size[find(n)];
    std::map<const Node*, int64_t> id;
    bool changed = false;
    for (Node* n : order) {
      const Node* root = find(n);
      if (size[root] < 2) continue;
      auto it = id.emplace(root, static_cast<int64_t>(id.size())).first;
      n->setAttr(std::string(kFusionGroupAttr), it->second);
      auto old = before.find(n);
      changed |= old == before.end() || old->second != it->second;
    }
    for (const auto& [n, group] : before) changed |= !n->hasAttr(kFusionGroupAttr);
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createFuseElementwise() { return std::make_unique<FuseElementwise>(); }

}  // namespace kiln::passes
