// Reductions of a row-major [rows, cols] block over its rows (bias gradients, batch-norm
// statistics): the rows loop outside, the columns inside with one accumulator per column in a
// stack block. Each column still adds its elements in element order, as the interpreter does
// (reduceSumKernel, batchNormKernel), so results are bit-identical to it; the speed comes from
// the inner loop, which is contiguous and independent across columns, so it vectorizes without
// reassociation (one vector lane per column) where a loop down one column is strided and serial.
#include <llvm/IR/Intrinsics.h>

#include <limits>

#include "compiler/codegen/Emitter.h"
#include "ir/ShapeInference.h"

namespace kiln::codegen {

using llvm::Value;

llvm::Value* FunctionEmitter::columnBlock(unsigned slot) {
  while (columnBlocks_.size() <= slot) {
    llvm::IRBuilder<> eb(&fn_->getEntryBlock(), fn_->getEntryBlock().begin());
    llvm::AllocaInst* a = eb.CreateAlloca(llvm::ArrayType::get(b_.getInt64Ty(), kColumnChunk), nullptr, "columns");
    a->setAlignment(llvm::Align(64));
    columnBlocks_.push_back(a);
  }
  return columnBlocks_[slot];
}

void FunctionEmitter::columnChunks(Value* cols, const std::function<void(Value*, Value*)>& body) {
  // A constant width up to a chunk (every dense layer here) needs no chunk loop, and a constant
  // trip count lets the vectorizer drop its runtime checks.
  if (auto* c = llvm::dyn_cast<llvm::ConstantInt>(cols); c && c->getSExtValue() <= kColumnChunk)
    return body(i64(0), cols);
  Value* chunks = b_.CreateUDiv(b_.CreateAdd(cols, i64(kColumnChunk - 1)), i64(kColumnChunk));
  loop(chunks, [&](Value* k) {
    Value* c0 = b_.CreateMul(k, i64(kColumnChunk), "", true, true);
    Value* left = b_.CreateSub(cols, c0);
    body(c0, b_.CreateSelect(b_.CreateICmpSLT(left, i64(kColumnChunk)), left, i64(kColumnChunk), "chunk.width"));
  });
}

void FunctionEmitter::rowGroups(Value* rows, const std::function<void(Value*, int)>& body) {
  // Each group loads a column's accumulator once for kRowGroup rows instead of once per row
  // (the adds stay in row order); the loop helper needs trip counts >= 1, hence the guards.
  llvm::LLVMContext& ctx = m_.getContext();
  auto ifThen = [&](Value* cond, const std::function<void()>& then) {
    llvm::BasicBlock* thenBlock = llvm::BasicBlock::Create(ctx, "rows.then", fn_);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx, "rows.done", fn_);
    b_.CreateCondBr(cond, thenBlock, done);
    b_.SetInsertPoint(thenBlock);
    then();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  };
  Value* groups = b_.CreateUDiv(rows, i64(kRowGroup));
  ifThen(b_.CreateICmpSGT(groups, i64(0)), [&] {
    loop(groups, [&](Value* g) { body(b_.CreateMul(g, i64(kRowGroup), "", true, true), kRowGroup); });
  });
  Value* start = b_.CreateMul(groups, i64(kRowGroup), "", true, true);
  ifThen(b_.CreateICmpSGT(rows, start), [&] {
    loop(b_.CreateSub(rows, start), [&](Value* i) { body(b_.CreateAdd(start, i, "", true, true), 1); });
  });
}

namespace {
/// Element (row, c) of a [rows, cols] view of a value: the offset, and the coordinates when the
/// value is a matrix (then an inlined operand needs no division to find them).
Index columnIndex(llvm::IRBuilder<>& b, Value* row, Value* cols, Value* c, bool matrix) {
  Index idx;
  idx.linear = b.CreateAdd(b.CreateMul(row, cols, "", true, true), c, "", true, true);
  if (matrix) idx.dims = {row, c};
  return idx;
}
}  // namespace

void FunctionEmitter::emitColumnReduction(const Node& n, const Shape& reducedShape, const Shape& keptShape) {
  const kiln::Value* x = n.operand(0);
  const kiln::Value* y = n.result();
  const DType dt = x->type().dtype;
  const bool isMax = n.op() == OpKind::ReduceMax;
  const bool fp = isFloat(dt);
  // As emitReduction: sums in double (floats) or int64 (integers), max in the element type.
  llvm::Type* accT = isMax ? regType(dt) : fp ? b_.getDoubleTy() : b_.getInt64Ty();
  Value* init;
  if (!isMax) init = llvm::Constant::getNullValue(accT);
  else if (fp) init = llvm::ConstantFP::get(accT, -std::numeric_limits<double>::infinity());
  else init = llvm::ConstantInt::get(accT, dt == DType::Int32 ? uint64_t(int64_t(INT32_MIN)) : uint64_t(INT64_MIN));
  Value* cols = elementCount(keptShape);
  Value* rows = elementCount(reducedShape);
  const bool matrix = reducedShape.size() == 1 && keptShape.size() == 1;
  Value* acc = columnBlock(0);
  columnChunks(cols, [&](Value* c0, Value* width) {
    auto slot = [&](Value* j) { return b_.CreateInBoundsGEP(accT, acc, j); };
    loop(width, [&](Value* j) { b_.CreateStore(init, slot(j)); });
    rowGroups(rows, [&](Value* r0, int count) {
      loop(width, [&](Value* j) {
        Value* c = b_.CreateAdd(c0, j, "", true, true);
        Value* a = b_.CreateLoad(accT, slot(j));
        for (int u = 0; u < count; ++u) {
          Value* row = b_.CreateAdd(r0, i64(u), "", true, true);
          Value* v = element(x, columnIndex(b_, row, cols, c, matrix));
          if (isMax) {
            // NaN sticks: once a is NaN nothing compares greater; a NaN v is taken by v != v.
            Value* take = fp ? b_.CreateOr(b_.CreateFCmpOGT(v, a), b_.CreateFCmpUNO(v, v)) : b_.CreateICmpSGT(v, a);
            a = b_.CreateSelect(take, v, a);
          } else if (fp) {
            a = b_.CreateFAdd(a, dt == DType::Float32 ? b_.CreateFPExt(v, accT) : v);  // In order: no reassoc.
          } else {
            a = b_.CreateAdd(a, b_.CreateSExt(v, accT));
          }
        }
        b_.CreateStore(a, slot(j));
      });
    });
    Value* count = n.op() == OpKind::ReduceMean ? b_.CreateSIToFP(rows, accT) : nullptr;
    loop(width, [&](Value* j) {
      Value* r = b_.CreateLoad(accT, slot(j));
      if (count) r = b_.CreateFDiv(r, count);
      if (!isMax) r = fp ? b_.CreateFPTrunc(r, regType(dt)) : b_.CreateTrunc(r, regType(dt));
      store(y, b_.CreateAdd(c0, j, "", true, true), r);
    });
  });
}

// The statistics of feature c over the m rows, in double and in row order as batchNormKernel:
//   μ = Σx/m, σ² = Σ(x − μ)²/m (two passes: no cancellation for offset features)
//   new moving = moving·momentum + stat·(1 − momentum)   (results 1 and 2, when stored)
//   y = γ(x − μ)/sqrt(σ² + ε) + β   (one row-major pass per chunk)
void FunctionEmitter::emitBatchNormTrainingColumns(const Node& n) {
  const kiln::Value* x = n.operand(0);
  const Shape& xs = x->type().shape;
  const DType dt = x->type().dtype;
  const Shape rowShape(xs.begin(), xs.end() - 1);
  const bool matrix = xs.size() == 2;
  llvm::Type* f64 = b_.getDoubleTy();
  auto dc = [&](double v) { return llvm::ConstantFP::get(f64, v); };
  auto wide = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPExt(v, f64) : v; };
  auto narrow = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPTrunc(v, regType(dt)) : v; };
  const double momentum = n.f("momentum");
  Value* rows = elementCount(rowShape);
  Value* m = b_.CreateSIToFP(rows, f64);
  Value* cols = dimSize(xs.back());
  const kiln::Value* y = n.result(0);
  Value* meanBlock = columnBlock(0);
  Value* accBlock = columnBlock(1);  // Σx, then Σ(x − μ)², then 1/sqrt(σ² + ε).

  columnChunks(cols, [&](Value* c0, Value* width) {
    auto meanAt = [&](Value* j) { return b_.CreateInBoundsGEP(f64, meanBlock, j); };
    auto accAt = [&](Value* j) { return b_.CreateInBoundsGEP(f64, accBlock, j); };
    auto at = [&](Value* row, Value* j) { return columnIndex(b_, row, cols, b_.CreateAdd(c0, j, "", true, true), matrix); };
    // acc[j] = step(acc[j], element j of this chunk in row r) over every row, in row order.
    auto accumulate = [&](const std::function<Value*(Value*, Value*, Index&)>& step) {
      rowGroups(rows, [&](Value* r0, int count) {
        loop(width, [&](Value* j) {
          Value* a = b_.CreateLoad(f64, accAt(j));
          for (int u = 0; u < count; ++u) {
            Index e = at(b_.CreateAdd(r0, i64(u), "", true, true), j);
            a = step(a, j, e);
          }
          b_.CreateStore(a, accAt(j));
        });
      });
    };
    auto feature = [&](Value* j) {
      Index c;
      c.linear = b_.CreateAdd(c0, j, "", true, true);
      c.dims = {c.linear};
      return c;
    };
    loop(width, [&](Value* j) { b_.CreateStore(dc(0), accAt(j)); });
    accumulate([&](Value* a, Value*, Index& e) { return b_.CreateFAdd(a, wide(element(x, e))); });
    loop(width, [&](Value* j) {
      b_.CreateStore(b_.CreateFDiv(b_.CreateLoad(f64, accAt(j)), m, "bn.mean"), meanAt(j));
      b_.CreateStore(dc(0), accAt(j));
    });
    accumulate([&](Value* a, Value* j, Index& e) {
      Value* d = b_.CreateFSub(wide(element(x, e)), b_.CreateLoad(f64, meanAt(j)));
      return b_.CreateFAdd(a, b_.CreateFMul(d, d));
    });
    loop(width, [&](Value* j) {
      Index c = feature(j);
      Value* var = b_.CreateFDiv(b_.CreateLoad(f64, accAt(j)), m, "bn.var");
      for (unsigned r = 1; r <= 2; ++r) {
        const kiln::Value* moving = n.result(r);
        if (s_.isInlined(moving) || !buffers_.count(moving)) continue;
        Value* old = wide(element(n.operand(2 + r), c));
        Value* stat = r == 1 ? b_.CreateLoad(f64, meanAt(j)) : var;
        store(moving, c.linear, narrow(b_.CreateFAdd(b_.CreateFMul(old, dc(momentum)), b_.CreateFMul(stat, dc(1 - momentum)))));
      }
      Value* invStd = b_.CreateFDiv(dc(1.0), b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt,
                                                                     b_.CreateFAdd(var, dc(n.f("epsilon")))));
      b_.CreateStore(invStd, accAt(j));
    });
    if (!buffers_.count(y)) return;
    // The output row-major: rows outer, this chunk's features inner.
    loop(rows, [&](Value* row) {
      loop(width, [&](Value* j) {
      Index e = at(row, j);
      Index c = feature(j);
      Value* gamma = wide(element(n.operand(1), c));
      Value* beta = wide(element(n.operand(2), c));
      Value* centered = b_.CreateFSub(wide(element(x, e)), b_.CreateLoad(f64, meanAt(j)));
      Value* v = b_.CreateFAdd(b_.CreateFMul(b_.CreateFMul(gamma, centered), b_.CreateLoad(f64, accAt(j))), beta);
      store(y, e.linear, narrow(v));
      });
    });
  });
}

}  // namespace kiln::codegen
