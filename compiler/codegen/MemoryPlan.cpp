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
