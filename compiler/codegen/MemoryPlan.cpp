// Fusion decisions (from the op table's fusion classes) and the arena plan (from lifetimes).
#include "compiler/codegen/MemoryPlan.h"

#include <algorithm>

#include "compiler/passes/Fusion.h"

namespace kiln::codegen {

namespace {

int64_t roundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

}  // namespace

Expected<Schedule> scheduleGraph(const Graph& g, const ScheduleOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
  // Values that reach an output; the rest is dead code and is not emitted.
  std::set<const Value*> outputs = passes::outputValues(g), needed = outputs;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    bool live = false;
    for (size_t r = 0; r < n->numResults(); ++r) live |= needed.count(n->result(r)) != 0;
    if (!live) continue;
    for (Value* v : n->operands()) needed.insert(v);
  }

  Schedule s;
  s.epilogueBlockBytes = options.epilogueBlockBytes;
  for (Node* n : order) {
    bool live = false;
    for (size_t r = 0; r < n->numResults(); ++r) live |= needed.count(n->result(r)) != 0;
    if (!live) continue;
    s.order.push_back(n);
    const int64_t group = fusionGroup(*n);
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      if (n->op() == OpKind::Constant) {
        s.inlined.insert(v);  // Read from the module's read-only data, never copied.
        continue;
      }
      // The fuse-elementwise pass decides: a value is computed inside its reader's loop when
      // its node and every reader are in one fusion group. A value that leaves its group (an
      // output, a reader elsewhere: e.g. one a later rewrite added) is stored, which is always
      // correct.
      // A matmul's group makes its reader its epilogue (planEpilogues), not its loop.
      if (n->def().fusion == FusionClass::OutEwiseFusable) continue;
      if (group < 0 || !needed.count(v) || outputs.count(v) || v->users().empty()) continue;
      if (!std::all_of(v->users().begin(), v->users().end(),
                       [&](const Node* u) { return fusionGroup(*u) == group; }))
        continue;
      // A group the rules forbid (hand-written, or a graph rewritten after the pass) would be
      // recomputed per pass or broadcast element: refuse it rather than guess.
      if (std::string why = passes::whyNotFused(*v, outputs); !why.empty())
        return n->error("fusion_group " + std::to_string(group) + " puts '" + v->name() +
                        "' in the loop of its reader '" + v->users().front()->name() + "', but " + why +
                        "; remove the attribute or rerun the fuse-elementwise pass");
      s.inlined.insert(v);
    }
  }
  return s;
}

void planEpilogues(const Graph& g, Schedule& s) {
  s.epilogues.clear();
  std::set<const Value*> outputs = passes::outputValues(g);
  auto leaf = [](const Node* n) {
    return n->op() == OpKind::Input || n->op() == OpKind::Parameter || n->op() == OpKind::Constant;
  };
  for (size_t p = 0; p < s.order.size(); ++p) {
    const Node& mm = *s.order[p];
    if (mm.op() != OpKind::MatMul || fusionGroup(mm) < 0) continue;
    const Value* c = mm.result();
    if (c->users().empty()) continue;
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
    // Only the pass's pairs, and only when this order still allows them and the rules hold
    // (otherwise the product is simply stored first: slower, never wrong).
    if (!u || fusionGroup(*u) != fusionGroup(mm)) continue;
    if (!passes::whyNotEpilogue(mm, *u, s.inlined, outputs).empty()) continue;
    s.epilogues[&mm] = u;
  }
}

void planLoopMerges(const Graph& g, Schedule& s) {
  s.mergedLoops.clear();
  const std::set<const Value*> outputs = passes::outputValues(g);
  auto stored = [&](const Node* n) {
    std::vector<const Value*> r;
    for (size_t k = 0; k < n->numResults(); ++k) {
      const Value* v = n->result(k);
      if (!s.isInlined(v) && (outputs.count(v) || !v->users().empty())) r.push_back(v);
    }
    return r;
  };
  // The shape of n's loop when n may share one, else nullptr.
  auto loopShape = [&](const Node* n, const std::vector<const Value*>& results) -> const Shape* {
    switch (n->op()) {
      case OpKind::MatMul: case OpKind::ReduceSum: case OpKind::ReduceMean: case OpKind::ReduceMax:
      case OpKind::Softmax: case OpKind::LogSoftmax: case OpKind::SparseSoftmaxCrossEntropy:
      case OpKind::Accuracy: case OpKind::BinaryCrossEntropyWithLogits:
      case OpKind::MeanSquaredError: case OpKind::ArgMax:
        return nullptr;
      case OpKind::BatchNorm:
        if (n->b("training")) return nullptr;
        break;
      default:
        break;
    }
    if (fusionGroup(*n) < 0 || s.isEpilogue(n)) return nullptr;
    for (const Value* v : results)
      if (v->type().shape != results.front()->type().shape) return nullptr;
    return &results.front()->type().shape;
  };
  const Node* head = nullptr;
  const Shape* headShape = nullptr;
  for (const Node* n : s.order) {
    if (n->op() == OpKind::Input || n->op() == OpKind::Parameter || n->op() == OpKind::Constant)
      continue;
    std::vector<const Value*> results = stored(n);
    if (results.empty()) continue;  // Computed inside its reader's loop: emits nothing here.
    const Shape* shape = loopShape(n, results);
    if (head && shape && *shape == *headShape) {
      s.mergedLoops[head].push_back(n);
      continue;
    }
    head = shape ? n : nullptr;
    headShape = shape;
    if (head) s.mergedLoops[head] = {n};
  }
  for (auto it = s.mergedLoops.begin(); it != s.mergedLoops.end();)
    it = it->second.size() < 2 ? s.mergedLoops.erase(it) : std::next(it);
}

std::vector<const Value*> storedReads(const Node& n, const Schedule& s) {
  std::vector<const Value*> out;
  std::vector<const Value*> work(n.operands().begin(), n.operands().end());
  std::set<const Value*> seen;  // an inlined value with several readers is walked once
  while (!work.empty()) {
    const Value* v = work.back();
    work.pop_back();
    if (!seen.insert(v).second) continue;
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
  // A merged loop runs all its members at once: what any of them reads stays alive until the
  // last member's step, and every member's results are written from the first member's step.
  std::map<const Node*, std::pair<int, int>> mergedSpan;
  {
    std::map<const Node*, int> stepOf;
    for (size_t step = 0; step < s.order.size(); ++step) stepOf[s.order[step]] = static_cast<int>(step);
    for (const auto& [head, members] : s.mergedLoops)
      for (const Node* m : members) mergedSpan[m] = {stepOf.at(members.front()), stepOf.at(members.back())};
  }
  for (size_t step = 0; step < s.order.size(); ++step) {
    const Node* n = s.order[step];
    auto span = mergedSpan.find(n);
    const int readUntil = span != mergedSpan.end() ? span->second.second : static_cast<int>(step);
    const int writeFrom = span != mergedSpan.end() ? span->second.first : static_cast<int>(step);
    // A node's loop reads its operands while writing its results, so both are alive at `step`:
    // a result never shares memory with what it is computed from.
    for (const Value* r : storedReads(*n, s)) {
      auto it = slotOf.find(r);
      if (it != slotOf.end()) plan.slots[it->second].lastStep = std::max(plan.slots[it->second].lastStep, readUntil);
    }
    // An epilogue's loop runs between the row blocks of its matmul: the matmul's operands are
    // still read while it writes, so they stay alive until its step.
    for (const auto& [mm, e] : s.epilogues) {
      if (e != n) continue;
      for (const Value* r : storedReads(*mm, s)) {
        auto it = slotOf.find(r);
        if (it != slotOf.end()) plan.slots[it->second].lastStep = std::max(plan.slots[it->second].lastStep, static_cast<int>(step));
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
      slot.firstStep = writeFrom;
      slot.lastStep = readUntil;
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
