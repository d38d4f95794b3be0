// Fusion decisions (from the op table's fusion classes) and the arena plan (from lifetimes).
#include "compiler/codegen/MemoryPlan.h"

#include <algorithm>

namespace kiln::codegen {

namespace {

/// Ops that read an operand element more than once per output element (several passes over a
/// row) or need it in memory (matmul calls the runtime): an operand computed inline would be
/// recomputed per pass, so it is stored instead.
bool readsOperandsInOnePass(const Node& n) {
  // Training batch norm reads x three times (mean, variance, normalization).
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

/// Whether a value of this node can be computed element by element inside its user's loop.
bool fusesIntoUser(const Node& n) {
  // Inference form: per-feature elementwise; training form: batch statistics first (stored).
  if (n.op() == OpKind::BatchNorm) return !n.b("training");
  FusionClass c = n.def().fusion;
  return c == FusionClass::Elementwise || c == FusionClass::Broadcast;
}

/// Whether computing an element of n (its own loop's node, or a value inlined into it) reads the
/// product c. Clears `ok` when some path reads c at another index than the one computed: a
/// row block's epilogue may only read that block's rows. Collects the nodes of n's inline tree.
bool readsProduct(const Node& n, const Value* c, const Schedule& s, std::set<const Node*>& tree,
                  bool& ok) {
  tree.insert(&n);
  bool reads = false;
  for (unsigned k = 0; k < n.numOperands(); ++k) {
    const Value* o = n.operand(k);
    bool r = o == c;
    if (!r && s.isInlined(o) && o->node()->op() != OpKind::Constant)
      r = readsProduct(*o->node(), c, s, tree, ok);
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
  return reads;
}

int64_t roundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

}  // namespace

Expected<Schedule> scheduleGraph(const Graph& g, const ScheduleOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
  // Values that reach an output; the rest is dead code and is not emitted.
  std::set<const Value*> outputs, needed;
  for (const GraphOutput& o : g.outputs()) outputs.insert(o.value);
  needed = outputs;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    bool live = false;
    for (size_t r = 0; r < n->numResults(); ++r) live |= needed.count(n->result(r)) != 0;
    if (!live) continue;
    for (Value* v : n->operands()) needed.insert(v);
  }

  Schedule s;
  s.fuseEpilogues = options.fuseElementwise;
  s.epilogueBlockBytes = options.epilogueBlockBytes;
  for (Node* n : order) {
    bool live = false;
    for (size_t r = 0; r < n->numResults(); ++r) live |= needed.count(n->result(r)) != 0;
    if (!live) continue;
    s.order.push_back(n);
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      if (n->op() == OpKind::Constant) {
        s.inlined.insert(v);  // Read from the module's read-only data, never copied.
        continue;
      }
      if (!options.fuseElementwise) continue;
      if (!needed.count(v) || outputs.count(v) || !fusesIntoUser(*n) || v->users().empty()) continue;
      const Node* user = v->users().front();
      bool oneUser = std::all_of(v->users().begin(), v->users().end(),
                                 [&](const Node* u) { return u == user; });
      // A value its user broadcasts (a learning rate, an optimizer's bias correction) would be
      // recomputed for every element it is broadcast to; stored, it is computed once.
      FusionClass uc = user->def().fusion;
      bool broadcast = (uc == FusionClass::Elementwise || uc == FusionClass::Broadcast) &&
                       v->type().shape != user->result(0)->type().shape;
      if (oneUser && !broadcast && readsOperandsInOnePass(*user)) s.inlined.insert(v);
    }
  }
  return s;
}

void planEpilogues(const Graph& g, Schedule& s) {
  s.epilogues.clear();
  if (!s.fuseEpilogues) return;
  std::set<const Value*> outputs;
  for (const GraphOutput& o : g.outputs()) outputs.insert(o.value);
  auto leaf = [](const Node* n) {
    return n->op() == OpKind::Input || n->op() == OpKind::Parameter || n->op() == OpKind::Constant;
  };
  for (size_t p = 0; p < s.order.size(); ++p) {
    const Node& mm = *s.order[p];
    if (mm.op() != OpKind::MatMul) continue;
    const Value* c = mm.result();
    if (c->users().empty() || !isFloat(c->type().dtype)) continue;
    // The next node that emits code: nodes in between compute nothing (leaves, or values all
    // computed inline), so running it at the matmul's position changes no order of writes.
    const Node* u = nullptr;
    for (size_t q = p + 1; q < s.order.size() && !u; ++q) {
      const Node* n = s.order[q];
      if (leaf(n)) continue;
      for (size_t r = 0; r < n->numResults(); ++r) {
        // Unused results (inference batch norm's moving statistics) are not stored.
        const Value* v = n->result(r);
        if (!s.isInlined(v) && (outputs.count(v) || !v->users().empty())) u = n;
      }
    }
    if (!u) continue;
    FusionClass uc = u->def().fusion;
    bool elemental = u->op() == OpKind::BatchNorm
                         ? !u->b("training")
                         : uc == FusionClass::Elementwise || uc == FusionClass::Broadcast;
    if (!elemental) continue;
    // Each stored result is written block by block at the product's indices.
    bool ok = true;
    for (size_t r = 0; r < u->numResults(); ++r) {
      const Value* v = u->result(r);
      if (!s.isInlined(v) && (outputs.count(v) || !v->users().empty()))
        ok &= v->type().shape == c->type().shape;
    }
    std::set<const Node*> tree;
    if (!readsProduct(*u, c, s, tree, ok) || !ok) continue;
    // Every read of the product is in that loop (in training it also feeds the backward pass,
    // which needs all of it: then it stays a separate pass).
    if (!std::all_of(c->users().begin(), c->users().end(),
                     [&](const Node* n) { return tree.count(n) != 0; }))
      continue;
    // A result written to a caller's buffer may be a parameter updated in place; if the matmul
    // read that parameter, a block's epilogue would overwrite what later blocks still read.
    bool hazard = false;
    for (size_t r = 0; r < u->numResults(); ++r) {
      if (!outputs.count(u->result(r))) continue;
      for (const Value* o : mm.operands())
        hazard |= o->node()->op() == OpKind::Parameter &&
                  o->type().shape == u->result(r)->type().shape &&
                  o->type().dtype == u->result(r)->type().dtype;
    }
    if (hazard) continue;
    s.epilogues[&mm] = u;
  }
}

std::vector<const Value*> storedReads(const Node& n, const Schedule& s) {
  std::vector<const Value*> out;
  std::vector<const Value*> work(n.operands().begin(), n.operands().end());
  while (!work.empty()) {
    const Value* v = work.back();
    work.pop_back();
    if (s.isInlined(v)) {
      for (const Value* o : v->node()->operands()) work.push_back(o);
    } else if (std::find(out.begin(), out.end(), v) == out.end()) {
      out.push_back(v);
    }
  }
  return out;
}

const BufferSlot* MemoryPlan::find(const Value* v) const {
  for (const BufferSlot& s : slots)
    if (s.value == v) return &s;
  return nullptr;
}

MemoryPlan planMemory(const Graph& g, const Schedule& s) {
  std::set<const Value*> outputs;
  for (const GraphOutput& o : g.outputs()) outputs.insert(o.value);
  MemoryPlan plan;
  std::map<const Value*, size_t> slotOf;
  for (size_t step = 0; step < s.order.size(); ++step) {
    const Node* n = s.order[step];
    // A node's loop reads its operands while writing its results, so both are alive at `step`:
    // a result never shares memory with what it is computed from.
    for (const Value* r : storedReads(*n, s)) {
      auto it = slotOf.find(r);
      if (it != slotOf.end()) plan.slots[it->second].lastStep = static_cast<int>(step);
    }
    // An epilogue's loop runs between the row blocks of its matmul: the matmul's operands are
    // still read while it writes, so they stay alive until its step.
    for (const auto& [mm, e] : s.epilogues) {
      if (e != n) continue;
      for (const Value* r : storedReads(*mm, s)) {
        auto it = slotOf.find(r);
        if (it != slotOf.end()) plan.slots[it->second].lastStep = static_cast<int>(step);
      }
    }
    if (n->op() == OpKind::Input || n->op() == OpKind::Parameter) continue;
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      if (s.isInlined(v) || outputs.count(v)) continue;
      bool used = !v->users().empty();
      if (!used) continue;
      const TensorType& t = v->type();
      BufferSlot slot;
      slot.value = v;
      slot.perBatch = hasBatchDim(t.shape);
      int64_t count = 1;
      for (int64_t d : t.shape) count *= d == kBatch ? 1 : d;
      slot.bytes = roundUp(count * dtypeSize(t.dtype), MemoryPlan::kArenaAlignment);
      slot.firstStep = slot.lastStep = static_cast<int>(step);
      slotOf[v] = plan.slots.size();
      plan.slots.push_back(slot);
    }
  }
  // Greedy by size: the biggest buffers first, each at the lowest offset free during its lifetime.
  std::vector<size_t> bySize(plan.slots.size());
  for (size_t i = 0; i < bySize.size(); ++i) bySize[i] = i;
  std::stable_sort(bySize.begin(), bySize.end(),
                   [&](size_t a, size_t b) { return plan.slots[a].bytes > plan.slots[b].bytes; });
  std::vector<size_t> placed;
  for (size_t i : bySize) {
    BufferSlot& cur = plan.slots[i];
    std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, end) of live buffers in its region
    for (size_t j : placed) {
      const BufferSlot& o = plan.slots[j];
      if (o.perBatch == cur.perBatch && o.firstStep <= cur.lastStep && cur.firstStep <= o.lastStep)
        busy.push_back({o.offset, o.offset + o.bytes});
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (auto [b, e] : busy) {
      if (offset + cur.bytes <= b) break;
      offset = std::max(offset, e);
    }
    cur.offset = offset;
    placed.push_back(i);
    int64_t& total = cur.perBatch ? plan.perBatchBytes : plan.staticBytes;
    total = std::max(total, offset + cur.bytes);
    (cur.perBatch ? plan.perBatchBytesNoReuse : plan.staticBytesNoReuse) += cur.bytes;
  }
  return plan;
}

}  // namespace kiln::codegen
