// The ops that are not elemental get loop nests of their own (reductions, softmax, losses,
// argmax, accuracy) or a runtime call (matmul); the rest store an elemental loop. Accumulations
// over float32 run in double, as in the interpreter, with reassociation allowed so they vectorize.
#include <llvm/IR/Intrinsics.h>

#include <algorithm>
#include <limits>
#include <set>

#include "compiler/codegen/Emitter.h"
#include "ir/ShapeInference.h"
#include "runtime/KilnABI.h"

namespace kiln::codegen {

using llvm::Value;

namespace {
/// acc + v with reassociation allowed (a vectorizable reduction; the order of float sums changes).
Value* reassocAdd(llvm::IRBuilder<>& b, Value* acc, Value* v) {
  Value* r = b.CreateFAdd(acc, v);
  if (auto* i = llvm::dyn_cast<llvm::Instruction>(r)) i->setHasAllowReassoc(true);
  return r;
}

/// What one result element of `op` costs when computed inline, in units of one vector add: the
/// math emitter's transcendentals are a polynomial of about a dozen fused multiply-adds plus
/// range reduction; divisions and square roots take several cycles of their unit; random
/// numbers (dropout) a counter hash. Only the order of magnitude matters: it decides whether a
/// loop is worth splitting across threads.
int64_t inlineCost(OpKind op) {
  switch (op) {
    case OpKind::Exp: case OpKind::Log: case OpKind::Erf: case OpKind::Sigmoid: case OpKind::Tanh:
    case OpKind::Elu: case OpKind::Selu: case OpKind::Gelu: case OpKind::Swish:
    case OpKind::Softplus:
      return 12;
    case OpKind::Mish: case OpKind::Pow: return 24;
    case OpKind::Div: case OpKind::Sqrt: case OpKind::Rsqrt: return 4;
    case OpKind::BatchNorm: return 8;  // inference: a subtract, a root, a division, an fma
    case OpKind::Dropout: case OpKind::AlphaDropout: case OpKind::RRelu: return 8;
    default: return 1;
  }
}
}  // namespace

void FunctionEmitter::emitNode(const Node& n) {
  // The loop this node emits is its epilogue's when it is a matmul with one (the product itself
  // is a runtime call), or the merged loop of all its members when it heads one; an epilogue
  // node, or a merged loop's later member, emits nothing at its own position.
  std::vector<const Node*> loopNodes = {&n};
  if (auto e = s_.epilogues.find(&n); e != s_.epilogues.end()) loopNodes = {e->second};
  if (const std::vector<const Node*>* members = s_.mergedLoopOf(&n)) {
    if (members->front() != &n) return;
    loopNodes = *members;
  }
  beginAliasScopes(loopNodes);
  emitNodeLoops(n);
  endAliasScopes();
}

void FunctionEmitter::emitNodeLoops(const Node& n) {
  switch (n.op()) {
    case OpKind::Input: case OpKind::Parameter: case OpKind::Constant: return;
    case OpKind::MatMul: {
      auto e = s_.epilogues.find(&n);
      return e == s_.epilogues.end() ? emitMatMul(n) : emitMatMulWithEpilogue(n, *e->second);
    }
    case OpKind::ReduceSum: case OpKind::ReduceMean: case OpKind::ReduceMax: return emitReduction(n);
    case OpKind::Softmax: return emitSoftmax(n, /*log=*/false);
    case OpKind::LogSoftmax: return emitSoftmax(n, /*log=*/true);
    case OpKind::SparseSoftmaxCrossEntropy: return emitSparseCrossEntropy(n, /*accuracy=*/false);
    case OpKind::Accuracy: return emitSparseCrossEntropy(n, /*accuracy=*/true);
    case OpKind::BinaryCrossEntropyWithLogits: case OpKind::MeanSquaredError: return emitMeanLoss(n);
    case OpKind::ArgMax: return emitArgMax(n);
    case OpKind::BatchNorm:
      if (n.b("training")) return emitBatchNormTraining(n);
      break;  // Inference: elemental.
    default: break;
  }
  if (s_.isEpilogue(&n)) return;  // Emitted with its matmul's row blocks.
  emitElemental(n);
}

void FunctionEmitter::emitElemental(const Node& n) {
  // Elemental ops that are stored: one loop over the result, their inlined operands fused in; a
  // merged loop stores every member's results, in order, in one loop over their common shape.
  if (const std::vector<const Node*>* members = s_.mergedLoopOf(&n)) {
    std::vector<const kiln::Value*> stored;
    std::vector<const kiln::Value*> reads;
    for (const Node* m : *members) {
      for (size_t r = 0; r < m->numResults(); ++r)
        if (!s_.isInlined(m->result(r)) && buffers_.count(m->result(r))) stored.push_back(m->result(r));
      for (const kiln::Value* v : storedReads(*m, s_)) reads.push_back(v);
    }
    if (!stored.empty()) emitElementalLoop(stored, reads);
    return;
  }
  for (size_t r = 0; r < n.numResults(); ++r) {
    const kiln::Value* v = n.result(r);
    if (s_.isInlined(v) || !buffers_.count(v)) continue;
    emitElementalLoop({v}, storedReads(n, s_));
  }
}

void FunctionEmitter::emitElementalLoop(const std::vector<const kiln::Value*>& stored,
                                        const std::vector<const kiln::Value*>& reads) {
  {
    const kiln::Value* v = stored.front();
    // Each element of every stored value, in order: a later one reads an earlier one's element
    // back from where it was just stored (the same index), which LLVM forwards from the store.
    auto body = [&](Index& idx) {
      for (const kiln::Value* w : stored) store(w, idx.linear, compute(w, idx));
    };
    auto serial = [&] { loopNest(v->type().shape, body); };
    // A loop goes through the runtime's pool, when it has several threads, if its elements times
    // their estimated cost reach kParallelWork: below, handing half the loop to a worker (a
    // futex wake, the worker's cache misses on data the caller's core last wrote) costs more
    // than it saves. A plain add of two tensors (cost 4: three streams and the add) splits from
    // 64K elements, as every loop did when the threshold counted elements only; an exp (cost 14:
    // two streams and the exp) from about 19K, which takes in a SELU or Swish and their
    // backward over the deep models' 256 x 100 layers (see benchmarks/README.md).
    constexpr int64_t kParallelWork = int64_t(1) << 18;
    const int64_t cost = elementCost(stored, reads);
    const int64_t minElements = std::max<int64_t>(1, kParallelWork / cost);
    const Shape& shape = v->type().shape;
    int64_t inner = 1;
    bool staticInner = !shape.empty();
    for (size_t d = 1; d < shape.size(); ++d) {
      if (shape[d] == kBatch) staticInner = false;
      else inner *= shape[d];
    }
    bool mayBeLarge = staticInner && (shape[0] == kBatch || shape[0] * inner >= minElements);
    if (!mayBeLarge) {
      serial();
      return;
    }
    // Each element is computed on its own, so splitting the rows changes no bit of the result.
    llvm::FunctionCallee threads = m_.getOrInsertFunction(
        KILN_RT_GET_NUM_THREADS, llvm::FunctionType::get(b_.getInt32Ty(), {}, false));
    Value* rows = dimSize(shape[0]);
    Value* big = b_.CreateAnd(
        b_.CreateICmpSGE(b_.CreateMul(rows, i64(inner)), i64(minElements)),
        b_.CreateICmpSGT(b_.CreateCall(threads, {}), b_.getInt32(1)));
    llvm::LLVMContext& ctx = m_.getContext();
    llvm::BasicBlock* par = llvm::BasicBlock::Create(ctx, "elemental.parallel", fn_);
    llvm::BasicBlock* ser = llvm::BasicBlock::Create(ctx, "elemental.serial", fn_);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx, "elemental.done", fn_);
    b_.CreateCondBr(big, par, ser);
    b_.SetInsertPoint(par);
    std::vector<const kiln::Value*> values = reads;
    values.insert(values.end(), stored.begin(), stored.end());
    // Chunks of at least a quarter of kParallelWork: a loop just past the threshold has four
    // units of work, which two threads split evenly.
    const int64_t grain =
        std::max<int64_t>(1, minElements / 4 / std::max<int64_t>(inner, 1));
    parallelLoop(fn_->getName().str() + ".elemental." + v->name(), rows, grain, values,
                 [&](Value* r0, Value* r1) {
                   loop(b_.CreateSub(r1, r0), [&](Value* i) {
                     Value* row = b_.CreateAdd(r0, i, "", true, true);
                     // Row-major over the remaining dimensions, as loopNest does.
                     std::function<void(size_t, std::vector<Value*>, Value*)> rec =
                         [&](size_t k, std::vector<Value*> dims, Value* lin) {
                           if (k == shape.size()) {
                             Index idx{dims, lin};
                             body(idx);
                             return;
                           }
                           Value* dk = dimSize(shape[k]);
                           loop(dk, [&](Value* j) {
                             std::vector<Value*> d = dims;
                             d.push_back(j);
                             rec(k + 1, d,
                                 b_.CreateAdd(b_.CreateMul(lin, dk, "", true, true), j, "", true,
                                              true));
                           });
                         };
                     rec(1, {row}, row);
                   });
                 });
    b_.CreateBr(done);
    b_.SetInsertPoint(ser);
    serial();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }
}

int64_t FunctionEmitter::elementCost(const std::vector<const kiln::Value*>& stored,
                                     const std::vector<const kiln::Value*>& reads) const {
  // One per stream read or written, plus every op computed inline for one element of each
  // stored value. An inlined value used twice is counted once: LLVM computes it once.
  int64_t cost = static_cast<int64_t>(stored.size() + reads.size());
  std::set<const kiln::Value*> seen;
  std::function<void(const kiln::Value*)> walk = [&](const kiln::Value* v) {
    if (!seen.insert(v).second) return;
    const Node& n = *v->node();
    cost += inlineCost(n.op());
    for (size_t k = 0; k < n.numOperands(); ++k) {
      const kiln::Value* o = n.operand(k);
      if (o->node()->op() != OpKind::Constant && !buffers_.count(o) && s_.isInlined(o)) walk(o);
    }
  };
  for (const kiln::Value* v : stored) walk(v);
  return cost;
}

void FunctionEmitter::emitMatMul(const Node& n) {
  const kiln::Value* a = n.operand(0);
  const kiln::Value* bv = n.operand(1);
  const Shape& as = a->type().shape;
  const Shape& bs = bv->type().shape;
  bool ta = n.b("transpose_a"), tb = n.b("transpose_b");
  bool f64 = a->type().dtype == DType::Float64;
  llvm::Type* t = regType(a->type().dtype);
  llvm::Type* ptr = b_.getPtrTy();
  llvm::Type* i64t = b_.getInt64Ty();
  llvm::Type* i32t = b_.getInt32Ty();
  auto* fty = llvm::FunctionType::get(
      b_.getVoidTy(), {i64t, i64t, i64t, ptr, i64t, i32t, ptr, i64t, i32t, ptr, i64t, t, t}, false);
  llvm::FunctionCallee f = m_.getOrInsertFunction(f64 ? KILN_RT_MATMUL_F64 : KILN_RT_MATMUL_F32, fty);
  Value* m = dimSize(as[ta ? 1 : 0]);
  Value* k = dimSize(as[ta ? 0 : 1]);
  Value* nn = dimSize(bs[tb ? 0 : 1]);
  b_.CreateCall(f, {m, nn, k, bufferOf(a), dimSize(as[1]), b_.getInt32(ta), bufferOf(bv),
                    dimSize(bs[1]), b_.getInt32(tb), bufferOf(n.result()), nn,
                    llvm::ConstantFP::get(t, 1.0), llvm::ConstantFP::get(t, 0.0)});
}

void FunctionEmitter::emitMatMulWithEpilogue(const Node& n, const Node& epilogue) {
  const kiln::Value* a = n.operand(0);
  const kiln::Value* bv = n.operand(1);
  const kiln::Value* c = n.result();
  const Shape& as = a->type().shape;
  const Shape& bs = bv->type().shape;
  const Shape& cs = c->type().shape;
  bool ta = n.b("transpose_a"), tb = n.b("transpose_b");
  bool f64 = a->type().dtype == DType::Float64;
  llvm::Type* ptr = b_.getPtrTy();
  llvm::Type* i64t = b_.getInt64Ty();
  llvm::Type* i32t = b_.getInt32Ty();
  // The runtime multiplies row block by row block (B packed once, blocks shared over its
  // threads) and calls the epilogue on each block while it is in cache.
  auto* fty = llvm::FunctionType::get(
      b_.getVoidTy(),
      {i64t, i64t, i64t, ptr, i64t, i32t, ptr, i64t, i32t, ptr, i64t, i64t, ptr, ptr}, false);
  llvm::FunctionCallee f =
      m_.getOrInsertFunction(f64 ? KILN_RT_MATMUL_F64_BLOCKED : KILN_RT_MATMUL_F32_BLOCKED, fty);
  Value* m = dimSize(cs[0]);
  Value* k = dimSize(as[ta ? 0 : 1]);
  Value* nn = dimSize(cs[1]);
  // ScheduleOptions::epilogueBlockBytes: 0 leaves the block size to the runtime.
  const int64_t rowBytes = std::max<int64_t>(cs[1] * dtypeSize(c->type().dtype), 1);
  const int64_t blockRows =
      s_.epilogueBlockBytes > 0 ? std::max<int64_t>(s_.epilogueBlockBytes / rowBytes, 8) : 0;
  // What the epilogue's loop reads (the product among them) and the values it stores.
  std::vector<const kiln::Value*> values = storedReads(epilogue, s_);
  std::vector<const kiln::Value*> stored;
  for (size_t r = 0; r < epilogue.numResults(); ++r) {
    const kiln::Value* v = epilogue.result(r);
    if (!s_.isInlined(v) && buffers_.count(v)) stored.push_back(v);
  }
  values.insert(values.end(), stored.begin(), stored.end());
  // The epilogue over rows [r0, r1): every value it stores has the product's shape and reads the
  // product at the index it writes (planEpilogues), so it needs only this block, and blocks on
  // different threads write disjoint rows.
  auto body = [&](Value* r0, Value* r1) {
    Value* rows = b_.CreateSub(r1, r0, "block.rows");
    for (const kiln::Value* v : stored)
      loop(rows, [&](Value* i) {
        Value* row = b_.CreateAdd(r0, i, "", true, true);
        Value* base = b_.CreateMul(row, nn, "", true, true);
        loop(nn, [&](Value* j) {
          Index idx{{row, j}, b_.CreateAdd(base, j, "", true, true)};
          store(v, idx.linear, compute(v, idx));
        });
      });
  };
  outline(fn_->getName().str() + ".epilogue." + epilogue.name(), values, body,
          [&](llvm::Function* ep, Value* ctx) {
            b_.CreateCall(
                f, {m, nn, k, bufferOf(a), dimSize(as[1]), b_.getInt32(ta), bufferOf(bv),
                    dimSize(bs[1]), b_.getInt32(tb), bufferOf(c), nn, i64(blockRows), ep, ctx});
          });
}

void FunctionEmitter::emitReduction(const Node& n) {
  const kiln::Value* x = n.operand(0);
  const kiln::Value* y = n.result();
  const Shape& xs = x->type().shape;
  const DType dt = x->type().dtype;
  const int64_t rank = static_cast<int64_t>(xs.size());
  std::set<int64_t> reduced;
  for (int64_t a : n.ints("axes")) reduced.insert(*normalizeAxis(a, rank));
  if (reduced.empty())
    for (int64_t k = 0; k < rank; ++k) reduced.insert(k);
  Shape keptShape, reducedShape;
  for (int64_t k = 0; k < rank; ++k) (reduced.count(k) ? reducedShape : keptShape).push_back(xs[k]);
  // Reduced axes 0..p-1 and kept p..: a [rows, cols] block summed down its columns (bias
  // gradients), which vectorizes across columns (ColumnKernels.cpp).
  if (!keptShape.empty() && *reduced.rbegin() == static_cast<int64_t>(reduced.size()) - 1)
    return emitColumnReduction(n, reducedShape, keptShape);

  const bool isMax = n.op() == OpKind::ReduceMax;
  const bool fp = isFloat(dt);
  // Sums: double for floats, int64 for integers (wrapping, as the interpreter's int64 sum then
  // narrowed). Max: the element type.
  llvm::Type* accT = isMax ? regType(dt) : fp ? b_.getDoubleTy() : b_.getInt64Ty();
  llvm::AllocaInst* acc = local(accT, "acc");
  Value* init;
  if (!isMax) init = llvm::Constant::getNullValue(accT);
  else if (fp) init = llvm::ConstantFP::get(accT, -std::numeric_limits<double>::infinity());
  else init = llvm::ConstantInt::get(accT, dt == DType::Int32 ? uint64_t(int64_t(INT32_MIN)) : uint64_t(INT64_MIN));

  loopNest(keptShape, [&](Index& out) {
    std::vector<Value*> kept = out.dims;
    b_.CreateStore(init, acc);
    loopNest(reducedShape, [&](Index& in) {
      Index full;
      size_t ki = 0, ri = 0;
      for (int64_t k = 0; k < rank; ++k) full.dims.push_back(reduced.count(k) ? in.dims[ri++] : kept[ki++]);
      Value* v = element(x, full);
      Value* a = b_.CreateLoad(accT, acc);
      Value* r;
      if (isMax) {
        // NaN sticks: once a is NaN nothing compares greater; a NaN v is taken by v != v.
        Value* take = fp ? b_.CreateOr(b_.CreateFCmpOGT(v, a), b_.CreateFCmpUNO(v, v)) : b_.CreateICmpSGT(v, a);
        r = b_.CreateSelect(take, v, a);
      } else if (fp) {
        r = reassocAdd(b_, a, dt == DType::Float32 ? b_.CreateFPExt(v, accT) : v);
      } else {
        r = b_.CreateAdd(a, b_.CreateSExt(v, accT));
      }
      b_.CreateStore(r, acc);
    });
    Value* r = b_.CreateLoad(accT, acc);
    if (n.op() == OpKind::ReduceMean) {
      int64_t statics = 1;
      Value* count = i64(1);
      for (int64_t d : reducedShape) {
        if (d == kBatch) count = b_.CreateMul(count, dimSize(d));
        else statics *= d;
      }
      count = b_.CreateMul(count, i64(statics));
      r = b_.CreateFDiv(r, b_.CreateSIToFP(count, accT));
    }
    if (!isMax) r = fp ? b_.CreateFPTrunc(r, regType(dt)) : b_.CreateTrunc(r, regType(dt));
    store(y, out.linear, r);
  });
}

void FunctionEmitter::emitSoftmax(const Node& n, bool log) {
  const kiln::Value* x = n.operand(0);
  const kiln::Value* y = n.result();
  const Shape& xs = x->type().shape;
  const DType dt = x->type().dtype;
  llvm::Type* t = regType(dt);
  llvm::Type* d64 = b_.getDoubleTy();
  const size_t axis = static_cast<size_t>(*normalizeAxis(n.i("axis"), static_cast<int64_t>(xs.size())));
  Shape outerShape(xs.begin(), xs.begin() + static_cast<long>(axis));
  Shape innerShape(xs.begin() + static_cast<long>(axis) + 1, xs.end());
  Value* outer = elementCount(outerShape);
  Value* inner = elementCount(innerShape);
  Value* dim = dimSize(xs[axis]);
  auto toD = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPExt(v, d64) : v; };
  llvm::AllocaInst* maxSlot = local(t, "max");
  llvm::AllocaInst* sumSlot = local(d64, "sum");
  Value* expBlock = !log && xs[axis] != kBatch && xs[axis] <= kColumnChunk ? columnBlock(0) : nullptr;
  // softmax_k = exp(x_k - m)/Σ exp(x_j - m), m = max x: every exponent is <= 0, so nothing
  // overflows; log_softmax_k = (x_k - m) - log Σ exp(x_j - m), never log of a softmax.
  loop(outer, [&](Value* o) {
    loop(inner, [&](Value* i) {
      Value* base = b_.CreateAdd(b_.CreateMul(b_.CreateMul(o, dim), inner), i);
      auto at = [&](Value* k) {
        Index idx;
        idx.linear = b_.CreateAdd(base, b_.CreateMul(k, inner));
        return idx;
      };
      b_.CreateStore(llvm::ConstantFP::get(t, -std::numeric_limits<double>::infinity()), maxSlot);
      loop(dim, [&](Value* k) {
        Value* v = element(x, at(k));
        Value* m = b_.CreateLoad(t, maxSlot);
        b_.CreateStore(b_.CreateSelect(b_.CreateFCmpOLT(m, v), v, m), maxSlot);  // std::max(m, v)
      });
      Value* m = b_.CreateLoad(t, maxSlot);
      b_.CreateStore(llvm::ConstantFP::get(d64, 0.0), sumSlot);
      // Softmax keeps each exp for the last pass, which then only divides: in a stack block
      // when the axis fits one (no aliasing with x, so the sum loop still vectorizes), else in
      // y (element k of x is read before y's element k is written, so y may reuse x's buffer).
      auto expAt = [&](Value* k) { return b_.CreateInBoundsGEP(t, expBlock, k); };
      loop(dim, [&](Value* k) {
        Index idx = at(k);
        Value* e = math_.exp(b_.CreateFSub(element(x, idx), m));
        if (expBlock) b_.CreateStore(e, expAt(k));
        else if (!log) store(y, idx.linear, e);
        b_.CreateStore(reassocAdd(b_, b_.CreateLoad(d64, sumSlot), toD(e)), sumSlot);
      });
      Value* sum = b_.CreateLoad(d64, sumSlot);
      Value* logSum = log ? math_.libm("log", sum) : nullptr;
      loop(dim, [&](Value* k) {
        Index idx = at(k);
        Value* e = log ? nullptr : expBlock ? b_.CreateLoad(t, expAt(k)) : load(y, idx);
        Value* r = log ? b_.CreateFSub(b_.CreateFSub(toD(element(x, idx)), toD(m)), logSum)
                       : b_.CreateFDiv(toD(e), sum);
        store(y, idx.linear, dt == DType::Float32 ? b_.CreateFPTrunc(r, t) : r);
      });
    });
  });
}

Value* FunctionEmitter::labelIndex(const Node& n, const kiln::Value* labels, Value* row, Value* classes) {
  Index idx;
  idx.linear = row;
  Value* label = b_.CreateSExtOrTrunc(element(labels, idx), b_.getInt64Ty());
  // Unsigned compare: negative labels fail too. A failed label reads class 0 (in bounds).
  Value* bad = b_.CreateICmpUGE(label, classes);
  check(bad, n, "a label is outside the classes [0, " +
                    std::to_string(n.operand(0)->type().shape[1]) + ")");
  return b_.CreateSelect(bad, i64(0), label);
}

void FunctionEmitter::emitSparseCrossEntropy(const Node& n, bool accuracy) {
  const kiln::Value* z = n.operand(0);
  const kiln::Value* labels = n.operand(1);
  const Shape& zs = z->type().shape;
  const DType dt = z->type().dtype;
  llvm::Type* t = regType(dt);
  llvm::Type* d64 = b_.getDoubleTy();
  auto toD = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPExt(v, d64) : v; };
  Value* rows = dimSize(zs[0]);
  Value* classes = dimSize(zs[1]);
  llvm::AllocaInst* total = local(d64, "total");
  llvm::AllocaInst* best = local(b_.getInt64Ty(), "best");
  llvm::AllocaInst* maxSlot = local(t, "max");
  llvm::AllocaInst* sumSlot = local(d64, "sum");
  b_.CreateStore(llvm::ConstantFP::get(d64, 0.0), total);
  loop(rows, [&](Value* r) {
    Value* rowBase = b_.CreateMul(r, classes);
    auto at = [&](Value* k) {
      Index idx;
      idx.linear = b_.CreateAdd(rowBase, k);
      return idx;
    };
    Value* label = labelIndex(n, labels, r, classes);
    if (accuracy) {
      // The first largest logit (ties go to the lower class, NaN never wins), as argmax.
      b_.CreateStore(i64(0), best);
      b_.CreateStore(element(z, at(i64(0))), maxSlot);
      loop(classes, [&](Value* k) {
        Value* v = element(z, at(k));
        Value* better = b_.CreateFCmpOGT(v, b_.CreateLoad(t, maxSlot));
        b_.CreateStore(b_.CreateSelect(better, v, b_.CreateLoad(t, maxSlot)), maxSlot);
        b_.CreateStore(b_.CreateSelect(better, k, b_.CreateLoad(b_.getInt64Ty(), best)), best);
      });
      Value* hit = b_.CreateICmpEQ(b_.CreateLoad(b_.getInt64Ty(), best), label);
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(d64, total), b_.CreateUIToFP(hit, d64)), total);
      return;
    }
    // −log_softmax(z)[y] = (m − z_y) + log Σ exp(z_j − m).
    b_.CreateStore(llvm::ConstantFP::get(t, -std::numeric_limits<double>::infinity()), maxSlot);
    loop(classes, [&](Value* k) {
      Value* v = element(z, at(k));
      Value* m = b_.CreateLoad(t, maxSlot);
      b_.CreateStore(b_.CreateSelect(b_.CreateFCmpOLT(m, v), v, m), maxSlot);
    });
    Value* m = b_.CreateLoad(t, maxSlot);
    b_.CreateStore(llvm::ConstantFP::get(d64, 0.0), sumSlot);
    loop(classes, [&](Value* k) {
      Value* e = math_.exp(b_.CreateFSub(element(z, at(k)), m));
      b_.CreateStore(reassocAdd(b_, b_.CreateLoad(d64, sumSlot), toD(e)), sumSlot);
    });
    Value* zy = element(z, at(label));
    Value* loss = b_.CreateFAdd(b_.CreateFSub(toD(m), toD(zy)), math_.libm("log", b_.CreateLoad(d64, sumSlot)));
    b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(d64, total), loss), total);
  });
  Value* mean = b_.CreateFDiv(b_.CreateLoad(d64, total), b_.CreateSIToFP(rows, d64));
  store(n.result(), i64(0), dt == DType::Float32 ? b_.CreateFPTrunc(mean, t) : mean);
}

void FunctionEmitter::emitMeanLoss(const Node& n) {
  const kiln::Value* p = n.operand(0);
  const kiln::Value* q = n.operand(1);
  const Shape& shape = p->type().shape;
  const DType dt = p->type().dtype;
  llvm::Type* t = regType(dt);
  llvm::Type* d64 = b_.getDoubleTy();
  auto toD = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPExt(v, d64) : v; };
  llvm::AllocaInst* total = local(d64, "total");
  b_.CreateStore(llvm::ConstantFP::get(d64, 0.0), total);
  const bool bce = n.op() == OpKind::BinaryCrossEntropyWithLogits;
  loopNest(shape, [&](Index& idx) {
    Value* a = element(p, idx);
    Value* c = element(q, idx);
    Value* term;
    if (bce) {
      // max(z, 0) − z·y + log1p(exp(−|z|)): the exponent is never positive and no log(0) occurs.
      Value* za = toD(a);
      Value* pos = b_.CreateSelect(b_.CreateFCmpOLT(za, llvm::ConstantFP::get(d64, 0.0)),
                                   llvm::ConstantFP::get(d64, 0.0), za);
      Value* e = math_.exp(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, a)));
      term = b_.CreateFAdd(b_.CreateFSub(pos, b_.CreateFMul(za, toD(c))), toD(math_.log1pNonNegative(e)));
    } else {
      Value* d = b_.CreateFSub(toD(a), toD(c));
      term = b_.CreateFMul(d, d);
    }
    b_.CreateStore(reassocAdd(b_, b_.CreateLoad(d64, total), term), total);
  });
  Value* mean = b_.CreateFDiv(b_.CreateLoad(d64, total), b_.CreateSIToFP(elementCount(shape), d64));
  store(n.result(), i64(0), dt == DType::Float32 ? b_.CreateFPTrunc(mean, t) : mean);
}

void FunctionEmitter::emitArgMax(const Node& n) {
  const kiln::Value* x = n.operand(0);
  const kiln::Value* y = n.result();
  const Shape& xs = x->type().shape;
  const DType dt = x->type().dtype;
  llvm::Type* t = regType(dt);
  const size_t axis = static_cast<size_t>(*normalizeAxis(n.i("axis"), static_cast<int64_t>(xs.size())));
  llvm::AllocaInst* best = local(b_.getInt64Ty(), "best");
  llvm::AllocaInst* bestVal = local(t, "bestval");
  loopNest(y->type().shape, [&](Index& out) {
    auto at = [&](Value* k) {
      Index idx;
      idx.dims = out.dims;
      idx.dims.insert(idx.dims.begin() + static_cast<long>(axis), k);
      return idx;
    };
    b_.CreateStore(i64(0), best);
    b_.CreateStore(element(x, at(i64(0))), bestVal);
    loop(dimSize(xs[axis]), [&](Value* k) {
      Value* v = element(x, at(k));
      Value* cur = b_.CreateLoad(t, bestVal);
      Value* better = isFloat(dt) ? b_.CreateFCmpOGT(v, cur) : b_.CreateICmpSGT(v, cur);
      b_.CreateStore(b_.CreateSelect(better, v, cur), bestVal);
      b_.CreateStore(b_.CreateSelect(better, k, b_.CreateLoad(b_.getInt64Ty(), best)), best);
    });
    store(y, out.linear, b_.CreateLoad(b_.getInt64Ty(), best));
  });
}

}  // namespace kiln::codegen

namespace kiln::codegen {

// Per feature c (x's index on `axis`), over the m elements of every other axis, in double and in
// the interpreter's order (batchNormKernel), so the statistics match it bit for bit:
//   μ = Σx/m, σ² = Σ(x − μ)²/m (two passes: no cancellation for offset features)
//   new moving = moving·momentum + stat·(1 − momentum)   (results 1 and 2, when stored)
//   y = γ(x − μ)/sqrt(σ² + ε) + β
// Plain (not reassociated) adds keep the exact order. Features on the last axis (dense layers)
// go rows-outer instead (ColumnKernels.cpp); this per-feature loop serves the other layouts.
void FunctionEmitter::emitBatchNormTraining(const Node& n) {
  const kiln::Value* x = n.operand(0);
  const Shape& xs = x->type().shape;
  const DType dt = x->type().dtype;
  const size_t axis = static_cast<size_t>(*normalizeAxis(n.i("axis"), static_cast<int64_t>(xs.size())));
  if (xs.size() >= 2 && axis == xs.size() - 1) return emitBatchNormTrainingColumns(n);
  Shape rest;
  for (size_t k = 0; k < xs.size(); ++k)
    if (k != axis) rest.push_back(xs[k]);
  llvm::Type* f64 = b_.getDoubleTy();
  auto dc = [&](double v) { return llvm::ConstantFP::get(f64, v); };
  auto wide = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPExt(v, f64) : v; };
  auto narrow = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPTrunc(v, regType(dt)) : v; };
  const double momentum = n.f("momentum");
  Value* m = b_.CreateSIToFP(elementCount(rest), f64);
  llvm::AllocaInst* acc = local(f64, "bn.acc");
  const kiln::Value* y = n.result(0);

  loop(dimSize(xs[axis]), [&](Value* c) {
    Index feature;
    feature.dims = {c};
    feature.linear = c;
    // Every element of feature c: the other axes' indices with c inserted at `axis`.
    auto overFeature = [&](const std::function<void(Index&)>& body) {
      loopNest(rest, [&](Index& r) {
        Index full;
        for (size_t k = 0, j = 0; k < xs.size(); ++k) full.dims.push_back(k == axis ? c : r.dims[j++]);
        body(full);
      });
    };
    b_.CreateStore(dc(0), acc);
    overFeature([&](Index& e) {
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, acc), wide(element(x, e))), acc);
    });
    Value* mean = b_.CreateFDiv(b_.CreateLoad(f64, acc), m, "bn.mean");
    b_.CreateStore(dc(0), acc);
    overFeature([&](Index& e) {
      Value* d = b_.CreateFSub(wide(element(x, e)), mean);
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, acc), b_.CreateFMul(d, d)), acc);
    });
    Value* var = b_.CreateFDiv(b_.CreateLoad(f64, acc), m, "bn.var");
    for (unsigned r = 1; r <= 2; ++r) {
      const kiln::Value* moving = n.result(r);
      if (s_.isInlined(moving) || !buffers_.count(moving)) continue;
      Value* old = wide(element(n.operand(2 + r), feature));
      Value* stat = r == 1 ? mean : var;
      store(moving, c, narrow(b_.CreateFAdd(b_.CreateFMul(old, dc(momentum)), b_.CreateFMul(stat, dc(1 - momentum)))));
    }
    if (!buffers_.count(y)) return;
    Value* invStd = b_.CreateFDiv(dc(1.0), b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt,
                                                                   b_.CreateFAdd(var, dc(n.f("epsilon")))));
    Value* gamma = wide(element(n.operand(1), feature));
    Value* beta = wide(element(n.operand(2), feature));
    overFeature([&](Index& e) {
      Value* v = b_.CreateFAdd(b_.CreateFMul(b_.CreateFMul(gamma, b_.CreateFSub(wide(element(x, e)), mean)), invStd), beta);
      store(y, linearOf(e, xs), narrow(v));
    });
  });
}

}  // namespace kiln::codegen
