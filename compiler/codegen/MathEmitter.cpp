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

Value* MathEmitter::horner(Value* x, std::initializer_list<double> coeffs) {
  // coeffs are c0, c1, ..., cn of c0 + c1 x + ... + cn x^n.
  llvm::Type* t = x->getType();
  const double* first = coeffs.begin();
  const double* p = coeffs.end() - 1;
  Value* acc = c(*p, t);
  while (p != first) {
    --p;
    acc = b_.CreateFAdd(b_.CreateFMul(acc, x), c(*p, t));
  }
  return acc;
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

// e^x = 2^n e^r with n = rint(x log2 e) and r = x - n ln2 in [-ln2/2, ln2/2]. ln2 is split in a
// 9-bit head (n * head is exact) and a tail (Cody and Waite), so r carries no cancellation error.
// e^r by its Taylor polynomial of degree 7: truncation < 0.35^8/8! = 5e-9 relative.
// Inputs are clamped to [-104, 88.8] (beyond: 0 and inf after scaling); NaN passes through.
Value* MathEmitter::exp(Value* x) {
  if (isF64(x)) return libm("exp", x);
  llvm::Type* t = x->getType();
  Value* xc = b_.CreateMinNum(b_.CreateMaxNum(x, c(-104.0, t)), c(88.8, t));
  Value* n = b_.CreateUnaryIntrinsic(llvm::Intrinsic::rint, b_.CreateFMul(xc, c(1.44269504088896341, t)));
  Value* r = b_.CreateFSub(xc, b_.CreateFMul(n, c(0.693359375, t)));
  r = b_.CreateFSub(r, b_.CreateFMul(n, c(-2.12194440e-4, t)));
  Value* p = horner(r, {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040});
  Value* ni = b_.CreateFPToSI(n, b_.getInt32Ty());
  return keepNan(x, scaleByPow2(p, ni));
}

// For |x| < 0.5, e^x - 1 by its Taylor polynomial (degree 9: truncation < 0.5^9/10! relative),
// which has no cancellation; elsewhere e^x - 1 loses at most one bit (e^x - 1 >= 0.39 |e^x|).
Value* MathEmitter::expm1(Value* x) {
  if (isF64(x)) return libm("expm1", x);
  Value* small = b_.CreateFMul(
      x, horner(x, {1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
                    1.0 / 40320, 1.0 / 362880, 1.0 / 3628800}));
  Value* large = b_.CreateFSub(exp(x), c(1.0, x->getType()));
  Value* isSmall = b_.CreateFCmpOLT(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x), c(0.5, x->getType()));
  return b_.CreateSelect(isSmall, small, large);
}

// x = m 2^e with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact). log(1+f) = 2 atanh(s) with
// s = f/(2+f), |s| < 0.172: log(1+f) = f - f²/2 + s(f²/2 + R) where R = Σ_k 2 s^2k/(2k+1) (the
// fdlibm arrangement, exact coefficients; truncated after s^12: < 1e-11 relative). Subnormal x
// is scaled by 2^23 first. x < 0 gives NaN, 0 gives -inf, inf and NaN themselves.
Value* MathEmitter::log(Value* x) {
  if (isF64(x)) return libm("log", x);
  llvm::Type* t = x->getType();
  llvm::Type* i32 = b_.getInt32Ty();
  auto ci = [&](int64_t v) { return llvm::ConstantInt::get(i32, static_cast<uint64_t>(v)); };
  Value* sub = b_.CreateFCmpOLT(x, c(1.17549435e-38, t));
  Value* xs = b_.CreateSelect(sub, b_.CreateFMul(x, c(8388608.0, t)), x);
  Value* bits = b_.CreateBitCast(xs, i32);
  Value* e = b_.CreateSub(b_.CreateAnd(b_.CreateLShr(bits, 23), ci(0xff)), ci(127));
  e = b_.CreateSelect(sub, b_.CreateSub(e, ci(23)), e);
  Value* m = b_.CreateBitCast(b_.CreateOr(b_.CreateAnd(bits, ci(0x7fffff)), ci(0x3f800000)), t);
  Value* big = b_.CreateFCmpOGT(m, c(1.41421356, t));
  m = b_.CreateSelect(big, b_.CreateFMul(m, c(0.5, t)), m);
  e = b_.CreateSelect(big, b_.CreateAdd(e, ci(1)), e);
  Value* f = b_.CreateFSub(m, c(1.0, t));
  Value* s = b_.CreateFDiv(f, b_.CreateFAdd(f, c(2.0, t)));
  Value* z = b_.CreateFMul(s, s);
  Value* R = b_.CreateFMul(z, horner(z, {2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13}));
  Value* hfsq = b_.CreateFMul(c(0.5, t), b_.CreateFMul(f, f));
  Value* logm = b_.CreateFAdd(b_.CreateFSub(f, hfsq), b_.CreateFMul(s, b_.CreateFAdd(hfsq, R)));
  Value* ef = b_.CreateSIToFP(e, t);
  Value* r = b_.CreateFAdd(b_.CreateFMul(ef, c(0.693359375, t)),
                           b_.CreateFAdd(logm, b_.CreateFMul(ef, c(-2.12194440e-4, t))));
  const double inf = std::numeric_limits<double>::infinity();
  r = b_.CreateSelect(b_.CreateFCmpOEQ(x, c(0.0, t)), c(-inf, t), r);
  r = b_.CreateSelect(b_.CreateFCmpOEQ(x, c(inf, t)), x, r);
  r = b_.CreateSelect(b_.CreateFCmpOLT(x, c(0.0, t)), c(std::numeric_limits<double>::quiet_NaN(), t), r);
  return keepNan(x, r);
}

// log1p(x) = log(u) * x/(u - 1) with u = 1 + x rounded (Goldberg): the rounding error of u
// cancels between log(u) and u - 1. u == 1 means x is below half an ulp of 1: log1p(x) = x.
Value* MathEmitter::log1pNonNegative(Value* x) {
  if (isF64(x)) return libm("log1p", x);
  llvm::Type* t = x->getType();
  Value* u = b_.CreateFAdd(c(1.0, t), x);
  Value* um1 = b_.CreateFSub(u, c(1.0, t));
  Value* one = b_.CreateFCmpOEQ(um1, c(0.0, t));
  // The division only runs on a safe denominator; its result is unused when u == 1.
  Value* r = b_.CreateFMul(log(u), b_.CreateFDiv(x, b_.CreateSelect(one, c(1.0, t), um1)));
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
Value* MathEmitter::erfcPositive(Value* a) {
  llvm::Type* t = a->getType();
  Value* ac = b_.CreateMinNum(a, c(10.5, t));
  Value* tt = b_.CreateFDiv(c(1.0, t), b_.CreateFAdd(c(1.0, t), b_.CreateFMul(c(0.5, t), ac)));
  Value* P = horner(tt, {-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                         -1.13520398, 1.48851587, -0.82215223, 0.17087277});
  llvm::Type* i32 = b_.getInt32Ty();
  Value* h = b_.CreateBitCast(
      b_.CreateAnd(b_.CreateBitCast(ac, i32), llvm::ConstantInt::get(i32, 0xfffff000u)), t);
  Value* tail = b_.CreateFMul(b_.CreateFSub(ac, h), b_.CreateFAdd(ac, h));
  Value* e1 = exp(b_.CreateFNeg(b_.CreateFMul(h, h)));
  Value* e2 = exp(b_.CreateFSub(P, tail));
  return b_.CreateFMul(tt, b_.CreateFMul(e1, e2));
}

Value* MathEmitter::erfc(Value* x) {
  if (isF64(x)) return libm("erfc", x);
  llvm::Type* t = x->getType();
  Value* a = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
  Value* r = erfcPositive(a);
  r = b_.CreateSelect(b_.CreateFCmpOLT(x, c(0.0, t)), b_.CreateFSub(c(2.0, t), r), r);
  return keepNan(x, r);
}

// |x| < 1: the Maclaurin series 2/sqrt(pi) Σ (-1)^k x^(2k+1)/(k!(2k+1)) through k = 10
// (alternating, so the error is below the first omitted term, 1/(11!·23) = 1.1e-9). Elsewhere
// 1 - erfc(|x|) with the sign: erfc(|x|) <= 0.16 there, so its relative error shrinks.
Value* MathEmitter::erf(Value* x) {
  if (isF64(x)) return libm("erf", x);
  llvm::Type* t = x->getType();
  Value* z = b_.CreateFMul(x, x);
  double fact = 1;
  std::vector<double> k;
  for (int i = 0; i <= 10; ++i) {
    if (i > 0) fact *= i;
    k.push_back((i % 2 ? -1.0 : 1.0) * 1.1283791670955126 / (fact * (2 * i + 1)));
  }
  Value* series = b_.CreateFMul(x, horner(z, {k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10]}));
  Value* a = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
  Value* tailv = b_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign,
                                          b_.CreateFSub(c(1.0, t), erfcPositive(a)), x);
  Value* r = b_.CreateSelect(b_.CreateFCmpOLT(a, c(1.0, t)), series, tailv);
  return keepNan(x, r);
}

Value* MathEmitter::sigmoid(Value* x) {
  llvm::Type* t = x->getType();
  Value* e = exp(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  Value* s = b_.CreateFDiv(c(1.0, t), b_.CreateFAdd(c(1.0, t), e));
  // NaN fails x >= 0 and comes out of e*s as NaN.
  return b_.CreateSelect(b_.CreateFCmpOGE(x, c(0.0, t)), s, b_.CreateFMul(e, s));
}

Value* MathEmitter::softplus(Value* x) {
  llvm::Type* t = x->getType();
  Value* e = exp(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  // std::max(x, 0) as the interpreter writes it: x < 0 ? 0 : x (NaN stays NaN).
  Value* pos = b_.CreateSelect(b_.CreateFCmpOLT(x, c(0.0, t)), c(0.0, t), x);
  return b_.CreateFAdd(pos, log1pNonNegative(e));
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
