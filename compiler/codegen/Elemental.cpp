// The elemental emitter (after XLA's): how each elementwise, broadcast and injective op computes
// one result element from its operands' elements, which is what lets chains of them fuse into a
// single loop with no buffer in between. Semantics follow compiler/interpreter/Kernels*.cpp.
#include <llvm/IR/Intrinsics.h>

#include <cmath>
#include <numbers>

#include "compiler/codegen/Emitter.h"
#include "ir/ShapeInference.h"

namespace kiln::codegen {

using llvm::Value;
namespace {
constexpr double kSeluLambda = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;
}  // namespace

Value* FunctionEmitter::element(const kiln::Value* v, Index idx) {
  const Node& n = *v->node();
  if (n.op() == OpKind::Constant && n.floats("value").size() == 1) {
    // A splat constant is just its value: the load from read-only data folds away.
    Index first;
    first.linear = i64(0);
    return load(v, first);
  }
  if (n.op() == OpKind::Constant || buffers_.count(v)) return load(v, idx);
  assert(s_.isInlined(v) && "a stored value is read before it is computed");
  return compute(v, idx);
}

Value* FunctionEmitter::compute(const kiln::Value* v, Index& idx) {
  // Within one stored element's expression, an inlined value read several times (fused with
  // several readers, or reached along several paths) is emitted once per index: without this a
  // chain of such diamonds would emit exponentially many copies for LLVM to merge. Entries live
  // for one top-level call; concat's branches drop those made inside a branch (they would not
  // dominate the join).
  if (computeDepth_ == 0) computed_.clear();
  std::pair<const kiln::Value*, std::vector<Value*>> key{v, idx.dims};
  key.second.push_back(idx.linear);
  if (auto it = computed_.find(key); it != computed_.end()) return it->second;
  const Node& n = *v->node();
  ++computeDepth_;
  Value* r = n.def().fusion == FusionClass::Injective ? injective(n, idx) : elementwise(n, v->index(), idx);
  --computeDepth_;
  computed_[key] = r;
  return r;
}

Value* FunctionEmitter::convert(Value* x, DType from, DType to, const Node& n) {
  if (from == to) return x;
  llvm::Type* rt = regType(to);
  if (isInteger(from) && isInteger(to)) return b_.CreateSExtOrTrunc(x, rt);
  // Everything else goes through double, as the interpreter's getDouble/setDouble do (so an
  // int64 beyond 2^53 rounds the same way).
  Value* d = x;
  if (from == DType::Float32) d = b_.CreateFPExt(x, b_.getDoubleTy());
  else if (from == DType::Bool) d = b_.CreateUIToFP(x, b_.getDoubleTy());
  else if (isInteger(from)) d = b_.CreateSIToFP(x, b_.getDoubleTy());
  llvm::Type* dt = b_.getDoubleTy();
  switch (to) {
    case DType::Float32: return b_.CreateFPTrunc(d, rt);
    case DType::Float64: return d;
    case DType::Bool: return b_.CreateFCmpUNE(d, llvm::ConstantFP::get(dt, 0.0));  // NaN is true
    case DType::Int32:
    case DType::Int64: {
      double lo = to == DType::Int32 ? -2147483648.0 : -9223372036854775808.0;
      Value* inRange = b_.CreateAnd(b_.CreateFCmpOGE(d, llvm::ConstantFP::get(dt, lo)),
                                    b_.CreateFCmpOLT(d, llvm::ConstantFP::get(dt, -lo)));
      check(b_.CreateNot(inRange), n, "cast of a value outside the range of " + std::string(dtypeName(to)));
      // The saturating conversion has no undefined result; out of range is reported above.
      return b_.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {rt, dt}, {d});
    }
  }
  return nullptr;
}

Value* FunctionEmitter::elementwise(const Node& n, unsigned result, Index& idx) {
  const Shape& out = n.result(result)->type().shape;
  auto operand = [&](size_t k) {
    const kiln::Value* o = n.operand(k);
    return element(o, broadcastIndex(idx, out, o->type().shape));
  };
  const DType dt = n.operand(0)->type().dtype;
  const bool fp = isFloat(dt);
  llvm::Type* t = regType(dt);
  auto cf = [&](double v) { return llvm::ConstantFP::get(t, v); };
  auto& m = math_;

  switch (n.op()) {
    case OpKind::Add: return fp ? b_.CreateFAdd(operand(0), operand(1)) : b_.CreateAdd(operand(0), operand(1));
    case OpKind::Sub: return fp ? b_.CreateFSub(operand(0), operand(1)) : b_.CreateSub(operand(0), operand(1));
    case OpKind::Mul: return fp ? b_.CreateFMul(operand(0), operand(1)) : b_.CreateMul(operand(0), operand(1));
    case OpKind::Div: {
      Value* a = operand(0);
      Value* d = operand(1);
      if (fp) return b_.CreateFDiv(a, d);
      // sdiv by 0 and INT_MIN / -1 are undefined in LLVM: divide by a safe divisor and select
      // the interpreter's results (-1 negates with wrap-around; 0 is a reported error).
      Value* zero = b_.CreateICmpEQ(d, llvm::ConstantInt::get(t, 0));
      Value* minus1 = b_.CreateICmpEQ(d, llvm::ConstantInt::getSigned(t, -1));
      check(zero, n, "integer division by zero");
      Value* safe = b_.CreateSelect(b_.CreateOr(zero, minus1), llvm::ConstantInt::get(t, 1), d);
      return b_.CreateSelect(minus1, b_.CreateSub(llvm::ConstantInt::get(t, 0), a), b_.CreateSDiv(a, safe));
    }
    case OpKind::Maximum:
    case OpKind::Minimum: {
      Value* a = operand(0);
      Value* c = operand(1);
      bool mx = n.op() == OpKind::Maximum;
      if (!fp) return b_.CreateSelect(mx ? b_.CreateICmpSGT(a, c) : b_.CreateICmpSLT(a, c), a, c);
      // NaN in either operand wins (a NaN `a` by the test, a NaN `c` because a > NaN is false).
      Value* pick = b_.CreateOr(mx ? b_.CreateFCmpOGT(a, c) : b_.CreateFCmpOLT(a, c), b_.CreateFCmpUNO(a, a));
      return b_.CreateSelect(pick, a, c);
    }
    case OpKind::Pow: return m.pow(operand(0), operand(1));

    case OpKind::Neg: return fp ? b_.CreateFNeg(operand(0)) : b_.CreateSub(llvm::ConstantInt::get(t, 0), operand(0));
    case OpKind::Abs: {
      Value* x = operand(0);
      if (fp) return b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
      return b_.CreateSelect(b_.CreateICmpSLT(x, llvm::ConstantInt::get(t, 0)),
                             b_.CreateSub(llvm::ConstantInt::get(t, 0), x), x);
    }
    case OpKind::Exp: return m.exp(operand(0));
    case OpKind::Log: return m.log(operand(0));
    case OpKind::Sqrt: return m.sqrt(operand(0));
    case OpKind::Rsqrt: return b_.CreateFDiv(cf(1.0), m.sqrt(operand(0)));
    case OpKind::Square: {
      Value* x = operand(0);
      return b_.CreateFMul(x, x);
    }
    case OpKind::Erf: return m.erf(operand(0));
    case OpKind::Cast: return convert(operand(0), dt, n.dtype("dtype"), n);

    case OpKind::Equal: case OpKind::NotEqual: case OpKind::Less: case OpKind::LessEqual:
    case OpKind::Greater: case OpKind::GreaterEqual: {
      using P = llvm::CmpInst::Predicate;
      Value* a = operand(0);
      Value* c = operand(1);
      static const std::map<OpKind, std::array<P, 3>> preds = {
          // float (ordered, except != which is true for NaN as in C++), signed int, bool
          {OpKind::Equal, {P::FCMP_OEQ, P::ICMP_EQ, P::ICMP_EQ}},
          {OpKind::NotEqual, {P::FCMP_UNE, P::ICMP_NE, P::ICMP_NE}},
          {OpKind::Less, {P::FCMP_OLT, P::ICMP_SLT, P::ICMP_ULT}},
          {OpKind::LessEqual, {P::FCMP_OLE, P::ICMP_SLE, P::ICMP_ULE}},
          {OpKind::Greater, {P::FCMP_OGT, P::ICMP_SGT, P::ICMP_UGT}},
          {OpKind::GreaterEqual, {P::FCMP_OGE, P::ICMP_SGE, P::ICMP_UGE}}};
      const auto& p = preds.at(n.op());
      return b_.CreateCmp(p[fp ? 0 : dt == DType::Bool ? 2 : 1], a, c);
    }
    case OpKind::Select: return b_.CreateSelect(operand(0), operand(1), operand(2));

    case OpKind::Sigmoid: return m.sigmoid(operand(0));
    case OpKind::Tanh: return m.tanh(operand(0));
    case OpKind::Relu: {
      Value* x = operand(0);
      return b_.CreateSelect(b_.CreateFCmpOLT(x, cf(0)), cf(0), x);
    }
    case OpKind::RRelu:
      if (n.b("training")) {
        // z < 0 ? T(α) z : z with α = lower + (upper − lower)·u_i in double (the interpreter's
        // rreluKernel); draw i is the element's row-major index in the result.
        Value* x = operand(0);
        double lower = n.f("lower"), upper = n.f("upper");
        Value* u = uniform(n, linearOf(idx, out));
        Value* alpha = b_.CreateFAdd(llvm::ConstantFP::get(b_.getDoubleTy(), lower),
                                     b_.CreateFMul(llvm::ConstantFP::get(b_.getDoubleTy(), upper - lower), u));
        if (dt == DType::Float32) alpha = b_.CreateFPTrunc(alpha, t);
        return b_.CreateSelect(b_.CreateFCmpOLT(x, cf(0)), b_.CreateFMul(alpha, x), x);
      }
      [[fallthrough]];
    case OpKind::LeakyRelu: {
      // Inference rrelu uses the mean slope (lower + upper)/2, computed in double as the interpreter does.
      double alpha = n.op() == OpKind::LeakyRelu ? n.f("alpha") : (n.f("lower") + n.f("upper")) / 2;
      Value* x = operand(0);
      return b_.CreateSelect(b_.CreateFCmpOLT(x, cf(0)), b_.CreateFMul(cf(alpha), x), x);
    }
    case OpKind::PRelu: {
      Value* x = operand(0);
      return b_.CreateSelect(b_.CreateFCmpOLT(x, cf(0)), b_.CreateFMul(operand(1), x), x);
    }
    case OpKind::Elu:
    case OpKind::Selu: {
      Value* x = operand(0);
      bool selu = n.op() == OpKind::Selu;
      Value* neg = b_.CreateFMul(cf(selu ? kSeluAlpha : n.f("alpha")), m.expm1(x));
      Value* y = b_.CreateSelect(b_.CreateFCmpOGE(x, cf(0)), x, neg);
      return selu ? b_.CreateFMul(cf(kSeluLambda), y) : y;
    }
    case OpKind::Gelu: {
      Value* z = operand(0);
      std::string form = n.s("approximate");
      if (form == "tanh") {
        // z σ(2u), u = sqrt(2/π)(z + 0.044715 z³): 0.5(1 + tanh u) = σ(2u) without cancellation.
        Value* k = cf(double(dt == DType::Float32 ? std::sqrt(2.0f / std::numbers::pi_v<float>)
                                                  : std::sqrt(2.0 / std::numbers::pi)));
        Value* cube = b_.CreateFMul(b_.CreateFMul(b_.CreateFMul(cf(0.044715), z), z), z);
        Value* u = b_.CreateFMul(k, b_.CreateFAdd(z, cube));
        return b_.CreateFMul(z, m.sigmoid(b_.CreateFMul(cf(2.0), u)));
      }
      if (form == "sigmoid") return b_.CreateFMul(z, m.sigmoid(b_.CreateFMul(cf(1.702), z)));
      // 0.5 z erfc(-z/√2): erfc keeps the tail for z << 0 that 1 + erf would cancel away.
      Value* arg = b_.CreateFDiv(b_.CreateFNeg(z), cf(std::numbers::sqrt2));
      return b_.CreateFMul(b_.CreateFMul(cf(0.5), z), m.erfc(arg));
    }
    case OpKind::Swish: {
      Value* z = operand(0);
      Value* beta = cf(n.f("beta"));
      if (n.numOperands() > 1) {  // A learnable scalar beta ([] or [1]) overrides the attribute.
        Index first;
        first.linear = i64(0);
        beta = element(n.operand(1), first);
      }
      return b_.CreateFMul(z, m.sigmoid(b_.CreateFMul(beta, z)));
    }
    case OpKind::Mish: {
      Value* z = operand(0);
      return b_.CreateFMul(z, m.tanh(m.softplus(z)));
    }
    case OpKind::Softplus: return m.softplus(operand(0));
    case OpKind::Dropout:
    case OpKind::AlphaDropout: {
      Value* x = operand(0);
      if (!n.b("training")) return x;  // Inference: the identity.
      // In double, then rounded once, as the interpreter's kernels do. Draw i is the element's
      // row-major index in the result.
      llvm::Type* f64 = b_.getDoubleTy();
      auto dc = [&](double v) { return llvm::ConstantFP::get(f64, v); };
      const double p = n.f("rate");
      Value* xd = dt == DType::Float32 ? b_.CreateFPExt(x, f64) : x;
      Value* keep = b_.CreateFCmpOGE(uniform(n, linearOf(idx, out)), dc(p));
      Value* y;
      if (n.op() == OpKind::Dropout) {
        // Kept units are divided by 1 − p (correctly rounded; not multiplied by a rounded 1/(1 − p)).
        y = b_.CreateSelect(keep, b_.CreateFDiv(xd, dc(1.0 - p)), dc(0.0));
      } else {
        // Dropped units go to SELU's saturation α' = −λα, then a·v + b restores a standardized
        // input's mean and variance (Klambauer et al.); a and b as the interpreter computes them.
        const double alphaP = -kSeluLambda * kSeluAlpha;
        const double a = 1.0 / std::sqrt((1 - p) * (1 + p * alphaP * alphaP));
        const double bb = -a * alphaP * p;
        Value* v = b_.CreateSelect(keep, xd, dc(alphaP));
        y = b_.CreateFAdd(b_.CreateFMul(dc(a), v), dc(bb));
      }
      return dt == DType::Float32 ? b_.CreateFPTrunc(y, t) : y;
    }

    case OpKind::BatchNorm: {
      // Results 1 and 2 pass the moving statistics through in inference.
      if (result > 0) return element(n.operand(2 + result), idx);
      // y = γ(x − μ)/sqrt(σ² + ε) + β with the moving μ, σ² of feature c = x's index on `axis`.
      const Shape& xs = n.operand(0)->type().shape;
      int64_t axis = *normalizeAxis(n.i("axis"), static_cast<int64_t>(xs.size()));
      Index c;
      c.dims = {dimsOf(idx, xs)[static_cast<size_t>(axis)]};
      Value* x = element(n.operand(0), idx);
      Value* gamma = element(n.operand(1), c);
      Value* beta = element(n.operand(2), c);
      Value* mean = element(n.operand(3), c);
      Value* var = element(n.operand(4), c);
      Value* invStd = b_.CreateFDiv(cf(1.0), m.sqrt(b_.CreateFAdd(var, cf(n.f("epsilon")))));
      return b_.CreateFAdd(b_.CreateFMul(b_.CreateFMul(gamma, b_.CreateFSub(x, mean)), invStd), beta);
    }
    default:
      break;
  }
  assert(false && "elementwise() called on an op without an elemental form");
  return nullptr;
}

Value* FunctionEmitter::injective(const Node& n, Index& idx) {
  const kiln::Value* x = n.operand(0);
  const Shape& xs = x->type().shape;
  const Shape& out = n.result()->type().shape;
  switch (n.op()) {
    case OpKind::Reshape:
    case OpKind::Flatten: {
      // Row-major data is unchanged: the same offset in the operand.
      Index r;
      r.linear = linearOf(idx, out);
      return element(x, r);
    }
    case OpKind::Transpose: {
      std::vector<int64_t> perm = n.ints("perm");
      if (perm.empty())
        for (int64_t k = static_cast<int64_t>(xs.size()) - 1; k >= 0; --k) perm.push_back(k);
      const auto& d = dimsOf(idx, out);
      Index r;
      r.dims.resize(xs.size());
      for (size_t k = 0; k < perm.size(); ++k) r.dims[static_cast<size_t>(perm[k])] = d[k];
      return element(x, r);
    }
    case OpKind::Slice: {
      std::vector<int64_t> starts = n.ints("starts"), axes = n.ints("axes");
      if (axes.empty())
        for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
      Index r;
      r.dims = dimsOf(idx, out);
      for (size_t k = 0; k < axes.size(); ++k) {
        size_t ax = static_cast<size_t>(*normalizeAxis(axes[k], static_cast<int64_t>(xs.size())));
        int64_t dim = xs[ax], b = starts[k];
        if (b < 0) b += dim;
        b = std::clamp<int64_t>(b, 0, dim);
        r.dims[ax] = b_.CreateAdd(r.dims[ax], i64(b), "", true, true);
      }
      return element(x, r);
    }
    case OpKind::Pad: {
      // Zero outside the operand; inside, its element. The read index is clamped so that the
      // (discarded) read outside stays in bounds and the loop needs no branch.
      std::vector<int64_t> before = n.ints("before");
      const auto& d = dimsOf(idx, out);
      Index r;
      Value* inside = b_.getTrue();
      for (size_t k = 0; k < xs.size(); ++k) {
        Value* p = b_.CreateSub(d[k], i64(before[k]));
        Value* ok = b_.CreateAnd(b_.CreateICmpSGE(p, i64(0)), b_.CreateICmpSLT(p, dimSize(xs[k])));
        inside = b_.CreateAnd(inside, ok);
        r.dims.push_back(b_.CreateSelect(ok, p, i64(0)));
      }
      Value* v = element(x, r);
      return b_.CreateSelect(inside, v, llvm::Constant::getNullValue(v->getType()));
    }
    case OpKind::Concat: {
      // The operand whose block along `axis` holds the index, found by a chain of branches.
      size_t axis = static_cast<size_t>(*normalizeAxis(n.i("axis"), static_cast<int64_t>(out.size())));
      std::vector<Value*> d = dimsOf(idx, out);
      llvm::LLVMContext& ctx = m_.getContext();
      llvm::BasicBlock* join = llvm::BasicBlock::Create(ctx, "concat.join", fn_);
      std::vector<std::pair<Value*, llvm::BasicBlock*>> incoming;
      const auto computedBefore = computed_;
      int64_t start = 0;
      for (size_t k = 0; k < n.numOperands(); ++k) {
        const kiln::Value* o = n.operand(k);
        int64_t size = o->type().shape[axis];
        bool last = k + 1 == n.numOperands();
        llvm::BasicBlock* here = llvm::BasicBlock::Create(ctx, "concat.part", fn_);
        llvm::BasicBlock* next = last ? nullptr : llvm::BasicBlock::Create(ctx, "concat.next", fn_);
        if (last) b_.CreateBr(here);
        else b_.CreateCondBr(b_.CreateICmpSLT(d[axis], i64(start + size)), here, next);
        b_.SetInsertPoint(here);
        Index r;
        r.dims = d;
        r.dims[axis] = b_.CreateSub(d[axis], i64(start));
        Value* v = element(o, r);
        computed_ = computedBefore;
        incoming.push_back({v, b_.GetInsertBlock()});
        b_.CreateBr(join);
        if (next) b_.SetInsertPoint(next);
        start += size;
      }
      b_.SetInsertPoint(join);
      llvm::PHINode* phi = b_.CreatePHI(incoming.front().first->getType(), static_cast<unsigned>(incoming.size()));
      for (auto& [v, bb] : incoming) phi->addIncoming(v, bb);
      return phi;
    }
    case OpKind::OneHot: {
      // y[..., k] = (indices[...] == k); an index outside [0, depth) is a reported error.
      const auto& d = dimsOf(idx, out);
      Index r;
      r.dims.assign(d.begin(), d.end() - 1);
      Value* label = b_.CreateSExtOrTrunc(element(x, r), b_.getInt64Ty());
      int64_t depth = n.i("depth");
      check(b_.CreateICmpUGE(label, i64(depth)), n, "an index is outside [0, " + std::to_string(depth) + ")");
      DType dt = n.result()->type().dtype;
      return b_.CreateSelect(b_.CreateICmpEQ(label, d.back()), floatConst(dt, 1.0), floatConst(dt, 0.0));
    }
    default:
      break;
  }
  assert(false && "injective() called on a non-injective op");
  return nullptr;
}

}  // namespace kiln::codegen
