// Inline float32 approximations of exp, expm1, log, tanh, erf, erfc, sigmoid and softplus, and
// float64 through the C library. The derivations are above each function.
#include "compiler/codegen/MathEmitter.h"

#include <llvm/IR/Intrinsics.h>

namespace kiln::codegen {

using llvm::Value;

Value* MathEmitter::libm(const char* name, Value* x) {
  llvm::Type* t = x->getType();
  llvm::FunctionCallee f = m_.getOrInsertFunction(name, llvm::FunctionType::get(t, {t}, false));
  if (auto* fn = llvm::dyn_cast<llvm::Function>(f.getCallee())) {
    fn->setDoesNotThrow();
    fn->setOnlyAccessesInaccessibleMemory();  // errno at most: calls may be hoisted or merged.
  }
  return b_.CreateCall(f, {x});
}

Value* MathEmitter::fma(Value* a, Value* b, Value* c) {
  return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, b, c});
}

Value* MathEmitter::horner(Value* x, std::initializer_list<double> coeffs) {
  // coeffs are c0, c1, ..., cn of c0 + c1 x + ... + cn x^n. Each step is a fused multiply-add
  // where the target has one: one rounding instead of two, so never less accurate.
  llvm::Type* t = x->getType();
  const double* first = coeffs.begin();
  const double* p = coeffs.end() - 1;
  Value* acc = c(*p, t);
  while (p != first) {
    --p;
    acc = fma(acc, x, c(*p, t));
  }
  return acc;
}

Value* MathEmitter::clamp(Value* x, double lo, double hi) {
  // Ordered compares are false for NaN, so NaN passes through (minnum/maxnum would replace it);
  // x86 lowers each select to one vmaxps/vminps.
  llvm::Type* t = x->getType();
  Value* a = b_.CreateSelect(b_.CreateFCmpOLT(x, c(lo, t)), c(lo, t), x);
  return b_.CreateSelect(b_.CreateFCmpOGT(a, c(hi, t)), c(hi, t), a);
}

MathEmitter::Reduced MathEmitter::reduce(Value* x, Value* lo) {
  // n = rint(x log2 e) by adding 1.5·2^23: the sum's last mantissa bit has weight 1, so the
  // rounding of the add is the rounding to an integer, and the sum's bits are 0x4b400000 + n
  // (|n| < 2^22), which gives the integer n without a float-to-int conversion (whose result on
  // NaN is poison in LLVM: NaN propagates through all of this instead).
  llvm::Type* t = x->getType();
  constexpr double kMagic = 12582912.0;  // 1.5 * 2^23
  Value* sum = lo ? b_.CreateFAdd(x, lo) : x;  // Only chooses n.
  Value* shifted = fma(sum, c(1.44269504088896341, t), c(kMagic, t));
  Value* n = b_.CreateFSub(shifted, c(kMagic, t));
  // r = x - n ln2 with ln2 split in a 9-bit head (n * head is exact for |n| < 2^15) and a tail
  // (Cody and Waite): the first step is exact, so r carries no cancellation error.
  Value* r = fma(n, c(-0.693359375, t), x);
  if (lo) r = b_.CreateFAdd(r, lo);
  r = fma(n, c(2.12194440e-4, t), r);
  return {r, b_.CreateBitCast(shifted, b_.getInt32Ty())};
}

Value* MathEmitter::expm1OverR(Value* r) {
  // e^r - 1 = r + r²/2 + r³ Q(r), Q the minimax cubic for relative error on [-ln2/2, ln2/2]
  // (Remez, weight r³/(e^r - 1)): relative error 1.4e-8 (0.23 of float's half-ulp 2^-24) in
  // exact arithmetic. Returned as P = 1 + r/2 + r²Q: r·P has no cancellation (and -0 stays -0),
  // 1 + r·P is one fused multiply-add.
  return horner(r, {1.0, 0.5, 0.166665487553, 0.0416668541228, 0.00836603428223, 0.00138982232422});
}

Value* MathEmitter::scaleByPow2(Value* p, Value* n) {
  // 2^n = 2^n1 * 2^n2 with n1 = floor(n/2): each factor is a normal float, and multiplying p by
  // them in turn rounds once into the subnormal range (or to inf) when the result gets there.
  llvm::Type* i32 = b_.getInt32Ty();
  Value* n1 = b_.CreateAShr(n, 1);
  Value* n2 = b_.CreateSub(n, n1);
  auto pow2 = [&](Value* k) {
    Value* bits = b_.CreateShl(b_.CreateAdd(k, llvm::ConstantInt::get(i32, 127)), 23);
    return b_.CreateBitCast(bits, b_.getFloatTy());
  };
  return b_.CreateFMul(b_.CreateFMul(p, pow2(n1)), pow2(n2));
}

// e^x = 2^n e^r (reduce), e^r = 1 + r P(r) with expm1OverR's polynomial (relative error of e^r:
// below 1.4e-8 · |r|/e^r < 0.6e-8, plus the fma's rounding). Inputs are clamped to [-104, 88.8]
// (beyond: 0 and inf after scaling); NaN propagates through the arithmetic. 2^n by scaleByPow2
// (n in [-150, 128]), so subnormal results and overflow come out right.
Value* MathEmitter::exp(Value* x) {
  if (isF64(x)) return libm("exp", x);
  return expOfReduced(reduce(clamp(x, -104.0, 88.8)));
}

Value* MathEmitter::expNonPositive(Value* x) {
  if (isF64(x)) return libm("exp", x);
  // Only the lower clamp: x <= 0 (or NaN) needs no overflow guard.
  llvm::Type* t = x->getType();
  return expOfReduced(reduce(b_.CreateSelect(b_.CreateFCmpOLT(x, c(-104.0, t)), c(-104.0, t), x)));
}

Value* MathEmitter::expOfReduced(const Reduced& red) {
  llvm::Type* i32 = b_.getInt32Ty();
  Value* p = fma(red.r, expm1OverR(red.r), c(1.0, red.r->getType()));
  Value* n = b_.CreateSub(red.shiftedBits, llvm::ConstantInt::get(i32, 0x4b400000));
  return scaleByPow2(p, n);
}

// e^x - 1 = 2^n (e^r - 1) + (2^n - 1) (the fdlibm decomposition), evaluated as
// 2 · fma(s, e^r - 1, s - 1/2) with s = 2^(n-1): one rounding in the fma (s - 1/2 is exact for
// -24 <= n <= 24, and beyond that its rounding is below half an ulp of the result), an exact
// doubling, and s stays a normal float up to n = 128 (x near 88.7). For n = 0 this is e^r - 1
// itself, so there is no cancellation near 0. The error of e^r - 1 is amplified at most 1.4x
// (n = 1, r = -ln2/2). x below -30 gives -1 (e^-30 < 2^-43) and above 88.8 inf; NaN propagates.
Value* MathEmitter::expm1(Value* x) {
  if (isF64(x)) return libm("expm1", x);
  llvm::Type* t = x->getType();
  llvm::Type* i32 = b_.getInt32Ty();
  Reduced red = reduce(clamp(x, -30.0, 88.8));
  Value* q = b_.CreateFMul(red.r, expm1OverR(red.r));
  // s = 2^(n-1): the exponent field n - 1 + 127 from the bits 0x4b400000 + n, whose high part
  // shifts out (0x4b400000 << 23 is 0 mod 2^32).
  Value* s = b_.CreateBitCast(b_.CreateShl(b_.CreateAdd(red.shiftedBits, llvm::ConstantInt::get(i32, 126)), 23), t);
  Value* y = fma(s, q, b_.CreateFSub(s, c(0.5, t)));
  return b_.CreateFMul(y, c(2.0, t));
}

// x = m 2^e with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact). log(1+f) = 2 atanh(s) with
// s = f/(2+f), |s| < 0.172: log(1+f) = f - f²/2 + s(f²/2 + R) with R(z = s²) ~ Σ_k 2 z^k/(2k+1)
// (the fdlibm arrangement). R is fdlibm's logf minimax quartic (e_logf.c, Lg1..Lg4: error below
// 2^-34 relative to the series), enough for float: the Taylor series would need six terms.
// Subnormal x (when `mayBeSubnormal`) is scaled by 2^23 first. Finite positive x only: log()
// adds the special values.
Value* MathEmitter::logPositive(Value* x, bool mayBeSubnormal) {
  llvm::Type* t = x->getType();
  llvm::Type* i32 = b_.getInt32Ty();
  auto ci = [&](int64_t v) { return llvm::ConstantInt::get(i32, static_cast<uint64_t>(v)); };
  Value* sub = mayBeSubnormal ? b_.CreateFCmpOLT(x, c(1.17549435e-38, t)) : nullptr;
  Value* xs = sub ? b_.CreateSelect(sub, b_.CreateFMul(x, c(8388608.0, t)), x) : x;
  Value* bits = b_.CreateBitCast(xs, i32);
  Value* e = b_.CreateSub(b_.CreateAnd(b_.CreateLShr(bits, 23), ci(0xff)), ci(127));
  if (sub) e = b_.CreateSelect(sub, b_.CreateSub(e, ci(23)), e);
  Value* m = b_.CreateBitCast(b_.CreateOr(b_.CreateAnd(bits, ci(0x7fffff)), ci(0x3f800000)), t);
  Value* big = b_.CreateFCmpOGT(m, c(1.41421356, t));
  m = b_.CreateSelect(big, b_.CreateFMul(m, c(0.5, t)), m);
  e = b_.CreateSelect(big, b_.CreateAdd(e, ci(1)), e);
  Value* f = b_.CreateFSub(m, c(1.0, t));
  Value* s = b_.CreateFDiv(f, b_.CreateFAdd(f, c(2.0, t)));
  Value* z = b_.CreateFMul(s, s);
  Value* R = b_.CreateFMul(z, horner(z, {0.66666662693, 0.40000972152, 0.28498786688, 0.24279078841}));
  Value* hfsq = b_.CreateFMul(c(0.5, t), b_.CreateFMul(f, f));
  Value* logm = fma(s, b_.CreateFAdd(hfsq, R), b_.CreateFSub(f, hfsq));
  // e ln2 + logm with ln2 split as in reduce(): e times the head is exact.
  Value* ef = b_.CreateSIToFP(e, t);
  return fma(ef, c(0.693359375, t), fma(ef, c(-2.12194440e-4, t), logm));
}

// x < 0 gives NaN, 0 gives -inf, inf and NaN themselves.
Value* MathEmitter::log(Value* x) {
  if (isF64(x)) return libm("log", x);
  llvm::Type* t = x->getType();
  Value* r = logPositive(x, /*mayBeSubnormal=*/true);
  const double inf = std::numeric_limits<double>::infinity();
  r = b_.CreateSelect(b_.CreateFCmpOEQ(x, c(0.0, t)), c(-inf, t), r);
  r = b_.CreateSelect(b_.CreateFCmpOEQ(x, c(inf, t)), x, r);
  r = b_.CreateSelect(b_.CreateFCmpOLT(x, c(0.0, t)), c(std::numeric_limits<double>::quiet_NaN(), t), r);
  return keepNan(x, r);
}

// log1p(x) = log(u) * x/(u - 1) with u = 1 + x rounded (Goldberg): the rounding error of u
// cancels between log(u) and u - 1. u == 1 means x is below half an ulp of 1: log1p(x) = x.
Value* MathEmitter::log1pNonNegative(Value* x, bool atMostOne) {
  if (isF64(x)) return libm("log1p", x);
  llvm::Type* t = x->getType();
  Value* u = b_.CreateFAdd(c(1.0, t), x);
  Value* um1 = b_.CreateFSub(u, c(1.0, t));
  Value* one = b_.CreateFCmpOEQ(um1, c(0.0, t));
  // u in [1, 2] needs none of log's special cases; NaN comes through the division below.
  Value* logu = atMostOne ? logPositive(u, /*mayBeSubnormal=*/false) : log(u);
  // The division only runs on a safe denominator; its result is unused when u == 1.
  Value* r = b_.CreateFMul(logu, b_.CreateFDiv(x, b_.CreateSelect(one, c(1.0, t), um1)));
  return b_.CreateSelect(one, x, r);
}

// tanh|x| = -e/(e+2) with e = expm1(-2|x|) in (-1, 0]: no cancellation at either end (for small
// x, e ~ -2x; for large x, e -> -1 and the result -> 1 exactly). The sign comes back last.
Value* MathEmitter::tanh(Value* x) {
  if (isF64(x)) return libm("tanh", x);
  llvm::Type* t = x->getType();
  Value* a = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
  Value* e = expm1(b_.CreateFMul(a, c(-2.0, t)));
  Value* r = b_.CreateFDiv(b_.CreateFNeg(e), b_.CreateFAdd(e, c(2.0, t)));
  return b_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, r, x);
}

// erfc(a) for a >= 0 (Numerical Recipes' erfcc, Chebyshev fit with relative error < 1.2e-7):
// t = 1/(1 + a/2), erfc(a) = t exp(-a² + P(t)). a² is split as h² + (a-h)(a+h) with h = a's
// top 12 bits, so h² is exact and the exponent loses nothing to the rounding of a² (which would
// cost |a²| ulps of relative error). a is clamped to 10.5 (erfc is 0 in float past 10.1).
// reduce() takes -h² and the rest apart: -h² - n·ln2_head is exact or rounds once (|.| < 2),
// then the rest is added, so the exponent carries an absolute error near 2^-24 whatever a is.
Value* MathEmitter::erfcPositive(Value* a) {
  llvm::Type* t = a->getType();
  Value* ac = clamp(a, 0.0, 10.5);  // NaN stays NaN
  Value* tt = b_.CreateFDiv(c(1.0, t), b_.CreateFAdd(c(1.0, t), b_.CreateFMul(c(0.5, t), ac)));
  Value* P = horner(tt, {-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                         -1.13520398, 1.48851587, -0.82215223, 0.17087277});
  llvm::Type* i32 = b_.getInt32Ty();
  Value* h = b_.CreateBitCast(
      b_.CreateAnd(b_.CreateBitCast(ac, i32), llvm::ConstantInt::get(i32, 0xfffff000u)), t);
  Value* tail = b_.CreateFMul(b_.CreateFSub(ac, h), b_.CreateFAdd(ac, h));
  // One exp of -h² + (P - tail), the exact -h² kept apart through the reduction (the argument is
  // in [-112, 0]: no clamp; NaN propagates).
  return b_.CreateFMul(tt, expOfReduced(reduce(b_.CreateFNeg(b_.CreateFMul(h, h)), b_.CreateFSub(P, tail))));
}

Value* MathEmitter::erfc(Value* x) {
  if (isF64(x)) return libm("erfc", x);
  llvm::Type* t = x->getType();
  Value* a = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
  Value* r = erfcPositive(a);
  return b_.CreateSelect(b_.CreateFCmpOLT(x, c(0.0, t)), b_.CreateFSub(c(2.0, t), r), r);
}

// |x| < 1: erf(x) = x E(x²), E the minimax sextic for relative error on [0, 1] (Remez, weight
// x/erf(x)): 1.2e-9 in exact arithmetic (the Maclaurin series would need degree 10). Elsewhere
// 1 - erfc(|x|) with the sign: erfc(|x|) <= 0.16 there, so its relative error shrinks. NaN
// propagates through both (erfcPositive's clamp keeps it).
Value* MathEmitter::erf(Value* x) {
  if (isF64(x)) return libm("erf", x);
  llvm::Type* t = x->getType();
  Value* z = b_.CreateFMul(x, x);
  Value* series = b_.CreateFMul(x, horner(z, {1.12837916573, -0.376126258242, 0.112835851485,
                                              -0.0268538119362, 0.00518832769414,
                                              -0.000801019375218, 7.85386192513e-5}));
  Value* a = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
  Value* tailv = b_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign,
                                          b_.CreateFSub(c(1.0, t), erfcPositive(a)), x);
  return b_.CreateSelect(b_.CreateFCmpOLT(a, c(1.0, t)), series, tailv);
}

Value* MathEmitter::sigmoid(Value* x) {
  llvm::Type* t = x->getType();
  Value* e = expNonPositive(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  Value* s = b_.CreateFDiv(c(1.0, t), b_.CreateFAdd(c(1.0, t), e));
  // NaN fails x >= 0 and comes out of e*s as NaN.
  return b_.CreateSelect(b_.CreateFCmpOGE(x, c(0.0, t)), s, b_.CreateFMul(e, s));
}

Value* MathEmitter::softplus(Value* x) {
  llvm::Type* t = x->getType();
  Value* e = expNonPositive(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  // std::max(x, 0) as the interpreter writes it: x < 0 ? 0 : x (NaN stays NaN).
  Value* pos = b_.CreateSelect(b_.CreateFCmpOLT(x, c(0.0, t)), c(0.0, t), x);
  return b_.CreateFAdd(pos, log1pNonNegative(e, /*atMostOne=*/true));
}

Value* MathEmitter::pow(Value* x, Value* y) {
  // Not one of the vectorized functions: negative bases with integral exponents and the many
  // special cases of pow are the C library's job.
  llvm::Type* t = x->getType();
  const char* name = isF64(x) ? "pow" : "powf";
  llvm::FunctionCallee f = m_.getOrInsertFunction(name, llvm::FunctionType::get(t, {t, t}, false));
  return b_.CreateCall(f, {x, y});
}

Value* MathEmitter::sqrt(Value* x) { return b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x); }

}  // namespace kiln::codegen
