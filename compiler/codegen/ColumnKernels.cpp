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

namespace {
/// Element (row, c) of a value whose shape is rowShape ++ colShape: the offset always, and the
/// coordinates when the columns are one axis (then an inlined operand needs no division).
Index columnIndex(llvm::IRBuilder<>& b, const Index& row, Value* cols, Value* c, size_t colRank) {
  Index idx;
  idx.linear = b.CreateAdd(b.CreateMul(row.linear, cols, "", true, true), c, "", true, true);
  if (colRank == 1) {
    idx.dims = row.dims;
    idx.dims.push_back(c);
  }
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
  Value* acc = columnBlock(0);
  columnChunks(cols, [&](Value* c0, Value* width) {
    auto slot = [&](Value* j) { return b_.CreateInBoundsGEP(accT, acc, j); };
    loop(width, [&](Value* j) { b_.CreateStore(init, slot(j)); });
    loopNest(reducedShape, [&](Index& row) {
      loop(width, [&](Value* j) {
        Value* v = element(x, columnIndex(b_, row, cols, b_.CreateAdd(c0, j, "", true, true), keptShape.size()));
        Value* a = b_.CreateLoad(accT, slot(j));
        Value* r;
        if (isMax) {
          // NaN sticks: once a is NaN nothing compares greater; a NaN v is taken by v != v.
          Value* take = fp ? b_.CreateOr(b_.CreateFCmpOGT(v, a), b_.CreateFCmpUNO(v, v)) : b_.CreateICmpSGT(v, a);
          r = b_.CreateSelect(take, v, a);
        } else if (fp) {
          r = b_.CreateFAdd(a, dt == DType::Float32 ? b_.CreateFPExt(v, accT) : v);  // In order: no reassoc.
        } else {
          r = b_.CreateAdd(a, b_.CreateSExt(v, accT));
        }
        b_.CreateStore(r, slot(j));
      });
    });
    Value* count = n.op() == OpKind::ReduceMean ? b_.CreateSIToFP(elementCount(reducedShape), accT) : nullptr;
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
  const Shape rows(xs.begin(), xs.end() - 1);
  llvm::Type* f64 = b_.getDoubleTy();
  auto dc = [&](double v) { return llvm::ConstantFP::get(f64, v); };
  auto wide = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPExt(v, f64) : v; };
  auto narrow = [&](Value* v) { return dt == DType::Float32 ? b_.CreateFPTrunc(v, regType(dt)) : v; };
  const double momentum = n.f("momentum");
  Value* m = b_.CreateSIToFP(elementCount(rows), f64);
  Value* cols = dimSize(xs.back());
  const kiln::Value* y = n.result(0);
  Value* meanBlock = columnBlock(0);
  Value* accBlock = columnBlock(1);  // Σx, then Σ(x − μ)², then 1/sqrt(σ² + ε).

  columnChunks(cols, [&](Value* c0, Value* width) {
    auto meanAt = [&](Value* j) { return b_.CreateInBoundsGEP(f64, meanBlock, j); };
    auto accAt = [&](Value* j) { return b_.CreateInBoundsGEP(f64, accBlock, j); };
    // body(j, element j of this chunk in row r) over every row, rows outer.
    auto overRows = [&](const std::function<void(Value*, Index&)>& body) {
      loopNest(rows, [&](Index& r) {
        loop(width, [&](Value* j) {
          Index e = columnIndex(b_, r, cols, b_.CreateAdd(c0, j, "", true, true), 1);
          body(j, e);
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
    overRows([&](Value* j, Index& e) {
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, accAt(j)), wide(element(x, e))), accAt(j));
    });
    loop(width, [&](Value* j) {
      b_.CreateStore(b_.CreateFDiv(b_.CreateLoad(f64, accAt(j)), m, "bn.mean"), meanAt(j));
      b_.CreateStore(dc(0), accAt(j));
    });
    overRows([&](Value* j, Index& e) {
      Value* d = b_.CreateFSub(wide(element(x, e)), b_.CreateLoad(f64, meanAt(j)));
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, accAt(j)), b_.CreateFMul(d, d)), accAt(j));
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
    overRows([&](Value* j, Index& e) {
      Index c = feature(j);
      Value* gamma = wide(element(n.operand(1), c));
      Value* beta = wide(element(n.operand(2), c));
      Value* centered = b_.CreateFSub(wide(element(x, e)), b_.CreateLoad(f64, meanAt(j)));
      Value* v = b_.CreateFAdd(b_.CreateFMul(b_.CreateFMul(gamma, centered), b_.CreateLoad(f64, accAt(j))), beta);
      store(y, e.linear, narrow(v));
    });
  });
}

}  // namespace kiln::codegen
