// FunctionEmitter's plumbing: types, index arithmetic, loads and stores, loops, run-time checks.
#include "compiler/codegen/Emitter.h"

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
  llvm::Value* x = b_.CreateAlignedLoad(mt, p, llvm::Align(dtypeSize(t.dtype)));
  if (t.dtype == DType::Bool) x = b_.CreateICmpNE(x, b_.getInt8(0));
  return x;
}

void FunctionEmitter::store(const Value* v, llvm::Value* linear, llvm::Value* x) {
  const TensorType& t = v->type();
  llvm::Type* mt = memType(t.dtype);
  if (t.dtype == DType::Bool) x = b_.CreateZExt(x, mt);
  llvm::Value* p = b_.CreateInBoundsGEP(mt, bufferOf(v), linear);
  b_.CreateAlignedStore(x, p, llvm::Align(dtypeSize(t.dtype)));
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

}  // namespace kiln::codegen
