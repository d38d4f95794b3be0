// FunctionEmitter's plumbing: types, index arithmetic, loads and stores, loops, run-time checks.
#include "compiler/codegen/Emitter.h"

#include <llvm/IR/MDBuilder.h>

#include <algorithm>

#include "runtime/KilnABI.h"

namespace kiln::codegen {

FunctionEmitter::FunctionEmitter(const Graph& g, const Schedule& s, llvm::Module& m,
                                 llvm::Function* fn, llvm::Value* batch)
    : g_(g), s_(s), m_(m), fn_(fn), b_(m.getContext()), math_(b_, m), batch_(batch) {
  b_.SetInsertPoint(&fn->getEntryBlock());
  status_ = local(b_.getInt32Ty(), "status");
  b_.CreateStore(b_.getInt32(0), status_);
}

llvm::Type* FunctionEmitter::regType(DType t) {
  switch (t) {
    case DType::Float32: return b_.getFloatTy();
    case DType::Float64: return b_.getDoubleTy();
    case DType::Int32: return b_.getInt32Ty();
    case DType::Int64: return b_.getInt64Ty();
    case DType::Bool: return b_.getInt1Ty();
  }
  return nullptr;
}

llvm::Type* FunctionEmitter::memType(DType t) {
  return t == DType::Bool ? b_.getInt8Ty() : regType(t);
}

llvm::Value* FunctionEmitter::elementCount(const Shape& s) {
  llvm::Value* n = i64(1);
  int64_t statics = 1;
  for (int64_t d : s) {
    if (d == kBatch) n = b_.CreateMul(n, batch_, "", /*HasNUW=*/true, /*HasNSW=*/true);
    else statics *= d;
  }
  return b_.CreateMul(n, i64(statics), "", true, true);
}

llvm::Value* FunctionEmitter::linearOf(const Index& idx, const Shape& s) {
  if (idx.linear) return idx.linear;
  llvm::Value* lin = i64(0);
  for (size_t k = 0; k < s.size(); ++k)
    lin = b_.CreateAdd(b_.CreateMul(lin, dimSize(s[k]), "", true, true), idx.dims[k], "", true, true);
  return lin;
}

const std::vector<llvm::Value*>& FunctionEmitter::dimsOf(Index& idx, const Shape& s) {
  if (idx.dims.size() == s.size()) return idx.dims;
  // Row-major coordinates from the offset, last axis first.
  std::vector<llvm::Value*> dims(s.size());
  llvm::Value* rest = idx.linear;
  for (size_t k = s.size(); k-- > 0;) {
    if (k == 0) {
      dims[k] = rest;
      break;
    }
    llvm::Value* d = dimSize(s[k]);
    dims[k] = b_.CreateURem(rest, d);
    rest = b_.CreateUDiv(rest, d);
  }
  idx.dims = std::move(dims);
  return idx.dims;
}

Index FunctionEmitter::broadcastIndex(Index& idx, const Shape& out, const Shape& in) {
  if (in == out) return idx;
  Index r;
  if (in.empty()) {
    r.linear = i64(0);
    return r;
  }
  const std::vector<llvm::Value*>& dims = dimsOf(idx, out);
  const size_t off = out.size() - in.size();
  for (size_t k = 0; k < in.size(); ++k) r.dims.push_back(in[k] == 1 ? i64(0) : dims[k + off]);
  return r;
}

llvm::Value* FunctionEmitter::load(const Value* v, const Index& idx) {
  const TensorType& t = v->type();
  llvm::Type* mt = memType(t.dtype);
  llvm::Value* p = b_.CreateInBoundsGEP(mt, bufferOf(v), linearOf(idx, t.shape));
  llvm::LoadInst* x = b_.CreateAlignedLoad(mt, p, llvm::Align(dtypeSize(t.dtype)));
  annotateAccess(x, v);
  if (t.dtype == DType::Bool) return b_.CreateICmpNE(x, b_.getInt8(0));
  return x;
}

void FunctionEmitter::store(const Value* v, llvm::Value* linear, llvm::Value* x) {
  const TensorType& t = v->type();
  llvm::Type* mt = memType(t.dtype);
  if (t.dtype == DType::Bool) x = b_.CreateZExt(x, mt);
  llvm::Value* p = b_.CreateInBoundsGEP(mt, bufferOf(v), linear);
  annotateAccess(b_.CreateAlignedStore(x, p, llvm::Align(dtypeSize(t.dtype))), v);
}

void FunctionEmitter::beginAliasScopes(const std::vector<const Node*>& loopNodes) {
  accessScopes_.clear();
  std::vector<const Value*> touched;
  for (const Node* n : loopNodes) {
    for (const Value* v : storedReads(*n, s_)) touched.push_back(v);
    for (size_t r = 0; r < n->numResults(); ++r)
      if (!s_.isInlined(n->result(r))) touched.push_back(n->result(r));
  }
  // One scope per distinct buffer pointer; constants (read-only globals) need none.
  llvm::MDBuilder md(m_.getContext());
  if (!aliasDomain_) aliasDomain_ = md.createAnonymousAliasScopeDomain("kiln.buffers");
  std::map<const Value*, llvm::MDNode*> scopes;
  for (const Value* v : touched) {
    auto it = buffers_.find(v);
    if (it == buffers_.end() || llvm::isa<llvm::GlobalValue>(it->second)) continue;
    llvm::MDNode*& scope = scopeOfBuffer_[it->second];
    if (!scope) scope = md.createAnonymousAliasScope(aliasDomain_, v->name());
    scopes[v] = scope;
  }
  for (const auto& [v, scope] : scopes) {
    std::vector<llvm::Metadata*> others;
    for (const auto& [w, other] : scopes)
      if (other != scope && std::find(others.begin(), others.end(), other) == others.end())
        others.push_back(other);
    if (others.empty()) continue;  // Nothing else in this loop to be told apart from.
    accessScopes_[v] = {llvm::MDNode::get(m_.getContext(), {scope}),
                        llvm::MDNode::get(m_.getContext(), others)};
  }
}

void FunctionEmitter::annotateAccess(llvm::Instruction* inst, const Value* v) {
  auto it = accessScopes_.find(v);
  if (it == accessScopes_.end()) return;
  inst->setMetadata(llvm::LLVMContext::MD_alias_scope, it->second.scope);
  inst->setMetadata(llvm::LLVMContext::MD_noalias, it->second.noalias);
}

llvm::Value* FunctionEmitter::bufferOf(const Value* v) {
  auto it = buffers_.find(v);
  if (it != buffers_.end()) return it->second;
  // Constants live in the module's read-only data, expanded to their full shape.
  const Node& n = *v->node();
  assert(n.op() == OpKind::Constant && "a value without a buffer is read as stored");
  const TensorType& t = v->type();
  std::vector<double> vals = n.floats("value");
  int64_t count = numElements(t.shape);
  std::vector<llvm::Constant*> elems;
  llvm::Type* mt = memType(t.dtype);
  for (int64_t i = 0; i < count; ++i) {
    double x = vals.size() == 1 ? vals[0] : vals[static_cast<size_t>(i)];
    // The interpreter's setDouble conversions: round to float, truncate to int, nonzero is true.
    switch (t.dtype) {
      case DType::Float32: elems.push_back(llvm::ConstantFP::get(mt, double(float(x)))); break;
      case DType::Float64: elems.push_back(llvm::ConstantFP::get(mt, x)); break;
      case DType::Int32: elems.push_back(llvm::ConstantInt::get(mt, static_cast<uint64_t>(int64_t(int32_t(x))))); break;
      case DType::Int64: elems.push_back(llvm::ConstantInt::get(mt, static_cast<uint64_t>(int64_t(x)))); break;
      case DType::Bool: elems.push_back(llvm::ConstantInt::get(mt, x != 0)); break;
    }
  }
  auto* at = llvm::ArrayType::get(mt, static_cast<uint64_t>(count));
  auto* gv = new llvm::GlobalVariable(m_, at, /*isConstant=*/true, llvm::GlobalValue::PrivateLinkage,
                                      llvm::ConstantArray::get(at, elems), "const." + n.name());
  gv->setAlignment(llvm::Align(MemoryPlan::kArenaAlignment));
  buffers_[v] = gv;
  return gv;
}

llvm::AllocaInst* FunctionEmitter::local(llvm::Type* t, const char* name) {
  llvm::IRBuilder<> eb(&fn_->getEntryBlock(), fn_->getEntryBlock().begin());
  return eb.CreateAlloca(t, nullptr, name);
}

void FunctionEmitter::loop(llvm::Value* n, const std::function<void(llvm::Value*)>& body) {
  llvm::LLVMContext& ctx = m_.getContext();
  llvm::BasicBlock* pre = b_.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx, "loop", fn_);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx, "loop.end", fn_);
  b_.CreateBr(header);
  b_.SetInsertPoint(header);
  llvm::PHINode* i = b_.CreatePHI(b_.getInt64Ty(), 2, "i");
  i->addIncoming(i64(0), pre);
  body(i);
  // Bottom-tested: every trip count here is at least 1, so no guard block is needed.
  llvm::Value* next = b_.CreateAdd(i, i64(1), "", true, true);
  i->addIncoming(next, b_.GetInsertBlock());
  b_.CreateCondBr(b_.CreateICmpSLT(next, n), header, exit);
  b_.SetInsertPoint(exit);
}

void FunctionEmitter::loopNest(const Shape& shape, const std::function<void(Index&)>& body) {
  // Recursively nest; the offset of (i0..ik) is offset(i0..ik-1) * dim_k + ik.
  std::function<void(size_t, std::vector<llvm::Value*>, llvm::Value*)> rec =
      [&](size_t k, std::vector<llvm::Value*> dims, llvm::Value* lin) {
        if (k == shape.size()) {
          Index idx{dims, lin};
          body(idx);
          return;
        }
        llvm::Value* dk = dimSize(shape[k]);
        loop(dk, [&](llvm::Value* i) {
          std::vector<llvm::Value*> d = dims;
          d.push_back(i);
          rec(k + 1, d, b_.CreateAdd(b_.CreateMul(lin, dk, "", true, true), i, "", true, true));
        });
      };
  rec(0, {}, i64(0));
}

void FunctionEmitter::check(llvm::Value* failed, const Node& n, const std::string& message) {
  checks_.push_back(n.diag(message).str());
  llvm::Value* id = b_.getInt32(static_cast<uint32_t>(checks_.size()));
  // A select, not a branch, so loops holding checks still vectorize (an "any-of" reduction).
  llvm::Value* cur = b_.CreateLoad(b_.getInt32Ty(), status_);
  b_.CreateStore(b_.CreateSelect(failed, id, cur), status_);
}

void FunctionEmitter::outline(const std::string& name, const std::vector<const Value*>& values,
                              const std::function<void(llvm::Value*, llvm::Value*)>& body,
                              const std::function<void(llvm::Function*, llvm::Value*)>& call) {
  llvm::LLVMContext& ctx = m_.getContext();
  llvm::Type* ptr = b_.getPtrTy();
  llvm::Type* i64t = b_.getInt64Ty();
  // Constants are globals the new function can name itself; everything else goes through ctx.
  std::vector<const Value*> passed;
  std::map<const Value*, llvm::Value*> inner;
  for (const Value* v : values) {
    if (!hasBuffer(v) && v->node()->op() != OpKind::Constant) continue;
    llvm::Value* buf = bufferOf(v);
    if (llvm::isa<llvm::GlobalValue>(buf))
      inner[v] = buf;
    else if (std::find(passed.begin(), passed.end(), v) == passed.end())
      passed.push_back(v);
  }
  for (const auto& [v, buf] : buffers_)
    if (llvm::isa<llvm::GlobalValue>(buf)) inner[v] = buf;

  // ctx: {status*, batch, seed, step, buffers...}.
  enum : unsigned { kStatus, kBatch, kSeed, kStep, kBuffers };
  std::vector<llvm::Type*> fields = {ptr, i64t, i64t, i64t};
  fields.insert(fields.end(), passed.size(), ptr);
  auto* st = llvm::StructType::create(ctx, fields, name + ".ctx");
  llvm::AllocaInst* slot = local(st, "outline.ctx");
  // The function's own status stays a register (checks in vectorized loops); the outlined
  // function reports into this slot instead, merged after the call.
  llvm::AllocaInst* subStatus = local(b_.getInt32Ty(), "outline.status");
  b_.CreateStore(b_.getInt32(0), subStatus);
  auto field = [&](llvm::Value* base, unsigned i) { return b_.CreateStructGEP(st, base, i); };
  b_.CreateStore(subStatus, field(slot, kStatus));
  b_.CreateStore(batch_ ? batch_ : i64(0), field(slot, kBatch));
  b_.CreateStore(seed_ ? seed_ : i64(0), field(slot, kSeed));
  b_.CreateStore(step_ ? step_ : i64(0), field(slot, kStep));
  for (size_t i = 0; i < passed.size(); ++i)
    b_.CreateStore(bufferOf(passed[i]), field(slot, kBuffers + static_cast<unsigned>(i)));

  auto* fty = llvm::FunctionType::get(b_.getVoidTy(), {i64t, i64t, ptr}, /*isVarArg=*/false);
  auto* f = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage, name, m_);
  f->addFnAttr(llvm::Attribute::NoUnwind);

  // Emit into f with the emitter's per-function state pointing at f's copies.
  llvm::IRBuilderBase::InsertPoint savedIP = b_.saveIP();
  llvm::Function* savedFn = fn_;
  llvm::Value *savedBatch = batch_, *savedSeed = seed_, *savedStep = step_;
  llvm::AllocaInst* savedStatus = status_;
  std::map<const Value*, llvm::Value*> savedBuffers = std::move(buffers_);
  fn_ = f;
  b_.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", f));
  llvm::Value* c = f->getArg(2);
  llvm::Value* parentStatus = b_.CreateLoad(ptr, field(c, kStatus), "status.out");
  batch_ = b_.CreateLoad(i64t, field(c, kBatch), "batch");
  seed_ = savedSeed ? b_.CreateLoad(i64t, field(c, kSeed), "seed") : nullptr;
  step_ = savedStep ? b_.CreateLoad(i64t, field(c, kStep), "step") : nullptr;
  buffers_ = std::move(inner);
  for (size_t i = 0; i < passed.size(); ++i)
    buffers_[passed[i]] =
        b_.CreateLoad(ptr, field(c, kBuffers + static_cast<unsigned>(i)), passed[i]->name());
  status_ = local(b_.getInt32Ty(), "status");
  b_.CreateStore(b_.getInt32(0), status_);
  body(f->getArg(0), f->getArg(1));
  // Blocks may run on several threads at once: an atomic max keeps a failure (any nonzero id)
  // whichever order they finish in.
  b_.CreateAtomicRMW(llvm::AtomicRMWInst::UMax, parentStatus,
                     b_.CreateLoad(b_.getInt32Ty(), status_), llvm::MaybeAlign(4),
                     llvm::AtomicOrdering::Monotonic);
  b_.CreateRetVoid();

  // Constants first read inside f are globals the caller can use too.
  for (const auto& [v, buf] : buffers_)
    if (llvm::isa<llvm::GlobalValue>(buf)) savedBuffers.emplace(v, buf);
  buffers_ = std::move(savedBuffers);
  status_ = savedStatus;
  step_ = savedStep;
  seed_ = savedSeed;
  batch_ = savedBatch;
  fn_ = savedFn;
  b_.restoreIP(savedIP);

  call(f, slot);
  llvm::Value* failed = b_.CreateLoad(b_.getInt32Ty(), subStatus);
  llvm::Value* cur = b_.CreateLoad(b_.getInt32Ty(), status_);
  b_.CreateStore(b_.CreateSelect(b_.CreateICmpNE(failed, b_.getInt32(0)), failed, cur), status_);
}

void FunctionEmitter::parallelLoop(const std::string& name, llvm::Value* n, int64_t grain,
                                   const std::vector<const Value*>& values,
                                   const std::function<void(llvm::Value*, llvm::Value*)>& body) {
  llvm::Type* i64t = b_.getInt64Ty();
  llvm::Type* ptr = b_.getPtrTy();
  llvm::FunctionCallee pf = m_.getOrInsertFunction(
      KILN_RT_PARALLEL_FOR, llvm::FunctionType::get(b_.getVoidTy(), {i64t, i64t, ptr, ptr}, false));
  outline(name, values, body, [&](llvm::Function* f, llvm::Value* ctx) {
    b_.CreateCall(pf, {n, i64(grain), f, ctx});
  });
}

}  // namespace kiln::codegen
