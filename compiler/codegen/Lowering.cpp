// Lowering of a graph to LLVM IR: the entry point's prologue (pointers to inputs, outputs,
// parameters and arena slots), one emitted node after another, copies for outputs that are
// leaves, and the arena-size function.
#include "compiler/codegen/Lowering.h"

#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

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

Expected<LoweredGraph> lowerGraph(const Graph& g, llvm::LLVMContext& ctx, std::string name,
                                  const ScheduleOptions& schedule, std::string entry) {
  LoweredGraph out;
  out.name = cIdentifier(name.empty() ? g.name() : name);
  out.entrySymbol = out.name + "_" + cIdentifier(entry);
  out.arenaSizeSymbol = out.entrySymbol + KILN_ARENA_SIZE_SUFFIX;
  KILN_ASSIGN_OR_RETURN(out.schedule, scheduleGraph(g, schedule));
  out.plan = planMemory(g, out.schedule);
  out.module = std::make_unique<llvm::Module>(out.name, ctx);
  llvm::Module& m = *out.module;

  llvm::IRBuilder<> b(ctx);
  llvm::Type* i64 = b.getInt64Ty();
  llvm::Type* ptr = b.getPtrTy();

  // int64_t NAME_arena_size(int64_t batch) = static + perBatch * batch.
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
  llvm::BasicBlock* entry = llvm::BasicBlock::Create(ctx, "entry", fn);
  llvm::Value* batch = fn->getArg(0);
  FunctionEmitter e(g, out.schedule, m, fn, batch);
  llvm::IRBuilder<>& eb = e.builder();
  eb.SetInsertPoint(entry);

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
  std::vector<Node*> inputs = g.inputs(), params = g.parameters();
  for (size_t i = 0; i < inputs.size(); ++i)
    e.setBuffer(inputs[i]->result(), pointerAt(fn->getArg(1), i, inputs[i]->name()));
  for (size_t i = 0; i < params.size(); ++i)
    e.setBuffer(params[i]->result(), pointerAt(fn->getArg(3), i, params[i]->name()));
  // The first output naming a computed value receives it directly; other outputs get copies.
  std::vector<std::pair<size_t, const Value*>> copies;
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const Value* v = g.outputs()[i].value;
    OpKind op = v->node()->op();
    bool leaf = op == OpKind::Input || op == OpKind::Parameter || op == OpKind::Constant;
    if (leaf || e.hasBuffer(v)) {
      copies.push_back({i, v});
      continue;
    }
    e.setBuffer(v, pointerAt(fn->getArg(2), i, g.outputs()[i].name));
  }
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
    if (stores && n->op() != OpKind::Input && n->op() != OpKind::Parameter) ++out.storedNodes;
    e.emitNode(*n);
  }
  // Outputs that are leaves or repeat another output: copied element by element.
  for (auto [i, v] : copies) {
    llvm::Value* dst = pointerAt(fn->getArg(2), i, g.outputs()[i].name);
    const TensorType& t = v->type();
    llvm::Type* mt = e.memType(t.dtype);
    e.loopNest(t.shape, [&](Index& idx) {
      llvm::Value* x = e.element(v, idx);
      if (t.dtype == DType::Bool) x = eb.CreateZExt(x, mt);
      eb.CreateAlignedStore(x, eb.CreateInBoundsGEP(mt, dst, idx.linear), llvm::Align(dtypeSize(t.dtype)));
    });
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
