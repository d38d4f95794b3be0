// Lowering of a graph to LLVM IR: the entry point's prologue (pointers to inputs, outputs,
// parameters and arena slots), one emitted node after another, copies for outputs that are
// leaves, and the arena-size function.
#include "compiler/codegen/Lowering.h"

#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <algorithm>
#include <map>
#include <set>

#include "compiler/codegen/Emitter.h"
#include "runtime/KilnABI.h"

namespace kiln::codegen {

std::string cIdentifier(const std::string& name) {
  std::string s;
  for (char c : name) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  if (s.empty()) s = "kiln_graph";
  if (std::isdigit(static_cast<unsigned char>(s[0]))) s = "_" + s;
  return s;
}

namespace {

/// Whether the loop storing v reads parameter p only at the element it writes: v's node is
/// elemental and every inlined value between v and p has v's shape (so the index passes through
/// unchanged). Then writing v into p's buffer in that same loop is safe.
bool readsOnlySameElement(const Value* v, const Value* p, const Schedule& s,
                          std::set<const Value*>& checked) {
  // A value reached again (inlined with several readers) passed the first time: a failure
  // anywhere returns false at once.
  if (!checked.insert(v).second) return true;
  const Node& n = *v->node();
  FusionClass c = n.def().fusion;
  if (c != FusionClass::Elementwise && c != FusionClass::Broadcast) return false;
  if (n.op() == OpKind::BatchNorm) return false;
  for (const Value* o : n.operands()) {
    if (o == p) {
      if (o->type().shape != v->type().shape) return false;
    } else if (s.isInlined(o) && o->node()->op() != OpKind::Constant) {
      if (o->type().shape != v->type().shape || !readsOnlySameElement(o, p, s, checked)) return false;
    }
  }
  return true;
}

/// Whether the node storing v (a state update of p) may write p's buffer in its own loop.
bool mayWriteInPlace(const Value* v, const Value* p, const Schedule& s) {
  std::vector<const Value*> reads = storedReads(*v->node(), s);
  if (std::find(reads.begin(), reads.end(), p) == reads.end()) return true;
  const Node& n = *v->node();
  if (n.op() == OpKind::BatchNorm && n.b("training")) {
    // Its moving-statistic results read the old statistic of feature c, then write feature c.
    unsigned r = v->index();
    if (r == 0) return false;
    for (unsigned k = 0; k < n.numOperands(); ++k)
      if (n.operand(k) == p && k != 2 + r) return false;
    return true;
  }
  std::set<const Value*> checked;
  return readsOnlySameElement(v, p, s, checked);
}

/// Reorders s.order so that every node reading the old value of a parameter updated in place
/// runs before the node that overwrites it (Kahn's algorithm, ties broken by the original order).
/// Updates whose constraints form a cycle become viaArena, and the rest are tried again.
void orderStateWrites(Schedule& s, std::vector<LoweredGraph::StateUpdate>& updates,
                      const std::vector<Node*>& params, const Graph& g) {
  std::map<const Node*, size_t> pos;
  for (size_t i = 0; i < s.order.size(); ++i) pos[s.order[i]] = i;
  std::vector<std::vector<const Value*>> reads(s.order.size());
  for (size_t i = 0; i < s.order.size(); ++i) reads[i] = storedReads(*s.order[i], s);
  for (;;) {
    // Edges: operands -> users, and readers of p -> the writer of p's new value.
    std::vector<std::vector<size_t>> next(s.order.size());
    std::vector<int> indegree(s.order.size(), 0);
    auto edge = [&](size_t a, size_t b) {
      next[a].push_back(b);
      ++indegree[b];
    };
    for (size_t i = 0; i < s.order.size(); ++i)
      for (const Value* o : s.order[i]->operands())
        if (auto it = pos.find(o->node()); it != pos.end()) edge(it->second, i);
    std::map<size_t, size_t> writerOf;  // writer position -> update index
    for (size_t u = 0; u < updates.size(); ++u) {
      if (updates[u].viaArena) continue;
      const Value* v = g.outputs()[updates[u].output].value;
      const Value* p = params[updates[u].param]->result();
      if (v == p) continue;  // Unchanged: nothing is written.
      size_t w = pos.at(v->node());
      writerOf[w] = u;
      for (size_t r = 0; r < s.order.size(); ++r)
        if (r != w && std::find(reads[r].begin(), reads[r].end(), p) != reads[r].end()) edge(r, w);
    }
    std::set<size_t> ready;
    for (size_t i = 0; i < s.order.size(); ++i)
      if (indegree[i] == 0) ready.insert(i);
    std::vector<const Node*> order;
    while (!ready.empty()) {
      size_t i = *ready.begin();
      ready.erase(ready.begin());
      order.push_back(s.order[i]);
      for (size_t j : next[i])
        if (--indegree[j] == 0) ready.insert(j);
    }
    if (order.size() == s.order.size()) {
      s.order = std::move(order);
      return;
    }
    // A cycle: the writers left unscheduled go through the arena.
    for (auto [w, u] : writerOf)
      if (indegree[w] > 0) updates[u].viaArena = true;
  }
}

int64_t roundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

}  // namespace

Expected<LoweredGraph> lowerGraph(const Graph& g, llvm::LLVMContext& ctx, std::string name,
                                  const ScheduleOptions& schedule, std::string entry, bool updatesState) {
  LoweredGraph out;
  out.name = cIdentifier(name.empty() ? g.name() : name);
  out.entrySymbol = out.name + "_" + cIdentifier(entry);
  out.arenaSizeSymbol = out.entrySymbol + KILN_ARENA_SIZE_SUFFIX;
  KILN_ASSIGN_OR_RETURN(out.schedule, scheduleGraph(g, schedule));
  std::vector<Node*> inputs = g.inputs(), params = g.parameters();

  // Which outputs are returned and which are new values of state.
  std::map<std::string, size_t> paramIndex;
  for (size_t j = 0; j < params.size(); ++j) paramIndex[params[j]->name()] = j;
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    auto it = updatesState ? paramIndex.find(g.outputs()[i].name) : paramIndex.end();
    if (it == paramIndex.end()) {
      out.returnedOutputs.push_back(i);
      continue;
    }
    const Value* v = g.outputs()[i].value;
    const Value* p = params[it->second]->result();
    if (v->type() != p->type())
      return v->node()->error("output '" + g.outputs()[i].name + "' is the new value of parameter '" +
                              p->name() + "' but is " + v->type().str() + ", expected " + p->type().str());
    OpKind op = v->node()->op();
    bool leaf = op == OpKind::Input || op == OpKind::Parameter || op == OpKind::Constant;
    // A leaf (other than p itself) is copied in at the end, like the copies below.
    bool inPlace = v == p || (!leaf && mayWriteInPlace(v, p, out.schedule));
    out.stateUpdates.push_back({i, it->second, !inPlace});
  }
  // A value that is the new value of two parameters, or also returned, is computed once (into
  // the first place) and copied into the others at the end.
  std::set<const Value*> seen;
  for (size_t i : out.returnedOutputs) seen.insert(g.outputs()[i].value);
  for (LoweredGraph::StateUpdate& u : out.stateUpdates)
    if (!seen.insert(g.outputs()[u.output].value).second) u.viaArena = true;
  orderStateWrites(out.schedule, out.stateUpdates, params, g);
  planEpilogues(g, out.schedule);
  planLoopMerges(g, out.schedule);
  out.plan = planMemory(g, out.schedule);
  // Arena temporaries for the updates that cannot be written in place: after the planned
  // static region (parameters have no batch dimension), alive for the whole call.
  std::map<size_t, int64_t> tempOffset;  // update index -> static offset
  for (size_t u = 0; u < out.stateUpdates.size(); ++u) {
    const LoweredGraph::StateUpdate& su = out.stateUpdates[u];
    const Value* v = g.outputs()[su.output].value;
    OpKind op = v->node()->op();
    bool leaf = op == OpKind::Input || op == OpKind::Parameter || op == OpKind::Constant;
    if (!su.viaArena || leaf) continue;
    tempOffset[u] = out.plan.staticBytes;
    out.plan.staticBytes += roundUp(numElements(v->type().shape) * dtypeSize(v->type().dtype), MemoryPlan::kArenaAlignment);
  }
  out.module = std::make_unique<llvm::Module>(out.name, ctx);
  llvm::Module& m = *out.module;

  llvm::IRBuilder<> b(ctx);
  llvm::Type* i64 = b.getInt64Ty();
  llvm::Type* ptr = b.getPtrTy();

  // int64_t SYMBOL_arena_size(int64_t batch) = static + perBatch * batch.
  {
    auto* fty = llvm::FunctionType::get(i64, {i64}, false);
    auto* f = llvm::Function::Create(fty, llvm::GlobalValue::ExternalLinkage, out.arenaSizeSymbol, m);
    b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", f));
    b.CreateRet(b.CreateAdd(b.getInt64(static_cast<uint64_t>(out.plan.staticBytes)),
                            b.CreateMul(f->getArg(0), b.getInt64(static_cast<uint64_t>(out.plan.perBatchBytes)))));
  }

  // The kiln_entry_fn signature (runtime/KilnABI.h).
  auto* fty = llvm::FunctionType::get(b.getInt32Ty(), {i64, ptr, ptr, ptr, ptr, i64, i64}, false);
  auto* fn = llvm::Function::Create(fty, llvm::GlobalValue::ExternalLinkage, out.entrySymbol, m);
  const char* argNames[] = {"batch", "inputs", "outputs", "params", "arena", "seed", "step"};
  for (unsigned i = 0; i < 7; ++i) fn->getArg(i)->setName(argNames[i]);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  llvm::BasicBlock* entryBlock = llvm::BasicBlock::Create(ctx, "entry", fn);
  llvm::Value* batch = fn->getArg(0);
  FunctionEmitter e(g, out.schedule, m, fn, batch);
  e.setRandomKey(fn->getArg(5), fn->getArg(6));
  llvm::IRBuilder<>& eb = e.builder();
  eb.SetInsertPoint(entryBlock);

  // A batch below 1 would make every loop's first trip wrong: refuse it up front.
  {
    Node* anchor = g.inputs().empty() ? nullptr : g.inputs().front();
    llvm::BasicBlock* bad = llvm::BasicBlock::Create(ctx, "bad_batch", fn);
    llvm::BasicBlock* body = llvm::BasicBlock::Create(ctx, "body", fn);
    eb.CreateCondBr(eb.CreateICmpSLT(batch, eb.getInt64(1)), bad, body);
    eb.SetInsertPoint(bad);
    int id = e.addCheckMessage(anchor ? anchor->diag("the batch size must be at least 1").str()
                                      : "the batch size must be at least 1");
    eb.CreateRet(eb.getInt32(static_cast<uint32_t>(id)));
    eb.SetInsertPoint(body);
  }

  auto pointerAt = [&](llvm::Value* array, size_t i, const std::string& nm) {
    llvm::Value* slot = eb.CreateConstInBoundsGEP1_64(ptr, array, i);
    llvm::LoadInst* p = eb.CreateAlignedLoad(ptr, slot, llvm::Align(8), nm);
    return p;
  };
  std::vector<llvm::Value*> paramPtrs;
  for (size_t i = 0; i < inputs.size(); ++i)
    e.setBuffer(inputs[i]->result(), pointerAt(fn->getArg(1), i, inputs[i]->name()));
  for (size_t i = 0; i < params.size(); ++i) {
    paramPtrs.push_back(pointerAt(fn->getArg(3), i, params[i]->name()));
    e.setBuffer(params[i]->result(), paramPtrs.back());
  }
  // The first place naming a computed value receives it directly; other places get copies.
  std::vector<std::pair<llvm::Value*, const Value*>> copies;  // destination, source
  auto place = [&](const Value* v, llvm::Value* dst) {
    OpKind op = v->node()->op();
    bool leaf = op == OpKind::Input || op == OpKind::Parameter || op == OpKind::Constant;
    if (leaf || e.hasBuffer(v)) copies.push_back({dst, v});
    else e.setBuffer(v, dst);
  };
  for (size_t k = 0; k < out.returnedOutputs.size(); ++k) {
    size_t i = out.returnedOutputs[k];
    place(g.outputs()[i].value, pointerAt(fn->getArg(2), k, g.outputs()[i].name));
  }
  std::vector<std::pair<llvm::Value*, llvm::Value*>> tempCopies;  // parameter, arena temp
  for (size_t u = 0; u < out.stateUpdates.size(); ++u) {
    const LoweredGraph::StateUpdate& su = out.stateUpdates[u];
    const Value* v = g.outputs()[su.output].value;
    if (v == params[su.param]->result()) continue;
    if (auto t = tempOffset.find(u); t != tempOffset.end()) {
      llvm::Value* temp = eb.CreateInBoundsGEP(eb.getInt8Ty(), fn->getArg(4), eb.getInt64(static_cast<uint64_t>(t->second)),
                                               g.outputs()[su.output].name + ".new");
      place(v, temp);
      tempCopies.push_back({paramPtrs[su.param], temp});
    } else {
      place(v, paramPtrs[su.param]);
    }
  }
  // Every copy runs after the last loop, so it must not read a parameter that loop overwrote.
  for (auto [dst, v] : copies)
    for (const LoweredGraph::StateUpdate& su : out.stateUpdates)
      if (v == params[su.param]->result() && g.outputs()[su.output].value != v)
        return v->node()->error("output of parameter '" + v->name() + "' is also the new value of " +
                                "state, which this lowering does not support");
  for (const BufferSlot& s : out.plan.slots) {
    llvm::Value* off = s.perBatch
                           ? eb.CreateAdd(eb.getInt64(static_cast<uint64_t>(out.plan.staticBytes)),
                                          eb.CreateMul(batch, eb.getInt64(static_cast<uint64_t>(s.offset))))
                           : eb.getInt64(static_cast<uint64_t>(s.offset));
    e.setBuffer(s.value, eb.CreateInBoundsGEP(eb.getInt8Ty(), fn->getArg(4), off, s.value->name()));
  }

  for (const Node* n : out.schedule.order) {
    bool stores = false;
    for (size_t r = 0; r < n->numResults(); ++r) stores |= e.hasBuffer(n->result(r));
    // A merged loop's later members run inside its first member's loop.
    const std::vector<const Node*>* merged = out.schedule.mergedLoopOf(n);
    if (merged && merged->front() != n) ++out.mergedNodes;
    else if (stores && n->op() != OpKind::Input && n->op() != OpKind::Parameter) ++out.storedNodes;
    e.emitNode(*n);
  }
  // Outputs that are leaves or repeat another output: copied element by element; then the new
  // state computed into the arena goes into its parameters.
  for (auto [dst, v] : copies) {
    const TensorType& t = v->type();
    llvm::Type* mt = e.memType(t.dtype);
    e.loopNest(t.shape, [&](Index& idx) {
      llvm::Value* x = e.element(v, idx);
      if (t.dtype == DType::Bool) x = eb.CreateZExt(x, mt);
      eb.CreateAlignedStore(x, eb.CreateInBoundsGEP(mt, dst, idx.linear), llvm::Align(dtypeSize(t.dtype)));
    });
  }
  for (size_t k = 0; k < tempCopies.size(); ++k) {
    auto [dst, src] = tempCopies[k];
    const Value* v = nullptr;
    for (const LoweredGraph::StateUpdate& su : out.stateUpdates)
      if (paramPtrs[su.param] == dst) v = params[su.param]->result();
    uint64_t bytes = static_cast<uint64_t>(numElements(v->type().shape) * dtypeSize(v->type().dtype));
    eb.CreateMemCpy(dst, llvm::MaybeAlign(dtypeSize(v->type().dtype)), src, llvm::MaybeAlign(MemoryPlan::kArenaAlignment), bytes);
  }
  eb.CreateRet(eb.CreateLoad(eb.getInt32Ty(), e.statusSlot()));
  out.checkMessages = e.checkMessages();

  std::string err;
  llvm::raw_string_ostream os(err);
  if (llvm::verifyModule(m, &os))
    return Error::msg("internal: the lowering of graph '" + g.name() + "' produced invalid IR: " + os.str());
  return out;
}

}  // namespace kiln::codegen
