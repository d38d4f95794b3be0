// Transcendental functions emitted inline as LLVM IR: float32 polynomial approximations that the
// loop vectorizer can widen (no libm calls in float32 loops, as XLA's CPU backend does), and
// float64 as calls to the C library (accuracy first; float64 graphs are for checking).
#pragma once

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

namespace kiln::codegen {

/// Emits scalar math at the builder's insertion point. Every function takes and returns a float
/// or double scalar; float results are computed without branches (selects only), so a loop of
/// them vectorizes. Polynomials and range reductions use llvm.fmuladd: fused (one rounding)
/// where the target has FMA, two roundings elsewhere. The test runs with FMA (the host); the same
/// sweep with every fmuladd split into a multiply and an add (a one-off run) stayed within the
/// same bounds (worst: exp 1.14 ulp, expm1 1.3, erf 2.32). Maximum errors of the float32 forms against double libm over normal
/// results (tests/CodegenMathTest.cpp: bound tested / measured, as relative error and in ulps of
/// the true result; subnormal results are within two subnormal steps):
///   exp      2.4e-7 / 7.3e-8, 2 / 0.87 ulp     expm1 (x < 0)  2.4e-7 / 1.2e-7, 2 / 1.21 ulp
///   log      2.4e-7 / 1.1e-7, 2 / 1.06 ulp     tanh           3.6e-7 / 1.7e-7, 3 / 2.48 ulp
///   sigmoid  3.6e-7 / 1.7e-7, 3 / 2.16 ulp     softplus       3.6e-7 / 2.0e-7, 3 / 2.58 ulp
///   erf      4e-7 / 1.7e-7, 3 / 2.26 ulp
/// erfc (used by exact GELU) is Numerical Recipes' fit, 1.2e-7 in exact arithmetic; it is checked
/// only through GELU (2e-6 scaled error).
class MathEmitter {
 public:
  MathEmitter(llvm::IRBuilder<>& b, llvm::Module& m) : b_(b), m_(m) {}

  llvm::Value* exp(llvm::Value* x);
  llvm::Value* expm1(llvm::Value* x);
  llvm::Value* log(llvm::Value* x);
  /// log(1 + x) for x >= 0 (all that softplus and the losses need); `atMostOne` when the
  /// caller knows x is in [0, 1] or NaN (a cheaper log).
  llvm::Value* log1pNonNegative(llvm::Value* x, bool atMostOne = false);
  llvm::Value* tanh(llvm::Value* x);
  llvm::Value* erf(llvm::Value* x);
  llvm::Value* erfc(llvm::Value* x);
  /// 1/(1+e^-x) without overflow: e = e^-|x|, then 1/(1+e) or e/(1+e).
  llvm::Value* sigmoid(llvm::Value* x);
  /// log(1+e^x) = max(x,0) + log1p(e^-|x|).
  llvm::Value* softplus(llvm::Value* x);
  llvm::Value* pow(llvm::Value* x, llvm::Value* y);
  llvm::Value* sqrt(llvm::Value* x);

  /// A call to a one-argument C library function of x's type (e.g. "exp", "erff").
  llvm::Value* libm(const char* name, llvm::Value* x);

 private:
  llvm::Value* c(double v, llvm::Type* t) { return llvm::ConstantFP::get(t, v); }
  /// a*b + c, fused where the target has an FMA instruction (llvm.fmuladd).
  llvm::Value* fma(llvm::Value* a, llvm::Value* b, llvm::Value* c);
  /// c[0] + x*(c[1] + x*(c[2] + ...)) by Horner's rule, one fma per step.
  llvm::Value* horner(llvm::Value* x, std::initializer_list<double> coeffs);
  /// min(max(x, lo), hi) with NaN passing through.
  llvm::Value* clamp(llvm::Value* x, double lo, double hi);
  /// x = n ln2 + r, |r| <= ln2/2 (a hair more when the fma rounds differently), for clamped
  /// float x; shiftedBits holds 0x4b400000 + n as an i32.
  struct Reduced {
    llvm::Value* r;
    llvm::Value* shiftedBits;
  };
  /// With `lo`, reduces x + lo keeping x (exact, e.g. -h²) apart from lo until after the exact step.
  Reduced reduce(llvm::Value* x, llvm::Value* lo = nullptr);
  /// 2^n e^r from a reduction.
  llvm::Value* expOfReduced(const Reduced& red);
  /// exp for x <= 0 or NaN (sigmoid's and softplus's e^-|x|): no overflow clamp.
  llvm::Value* expNonPositive(llvm::Value* x);
  /// (e^r - 1)/r for |r| <= ln2/2.
  llvm::Value* expm1OverR(llvm::Value* r);
  llvm::Value* isNan(llvm::Value* x) { return b_.CreateFCmpUNO(x, x); }
  llvm::Value* keepNan(llvm::Value* x, llvm::Value* r) { return b_.CreateSelect(isNan(x), x, r); }
  bool isF64(llvm::Value* x) const { return x->getType()->isDoubleTy(); }
  /// 2^n for an i32 n in [-252, 254] as a product of two float powers (reaches subnormals and inf).
  llvm::Value* scaleByPow2(llvm::Value* p, llvm::Value* n);
  llvm::Value* erfcPositive(llvm::Value* a);
  /// log of a positive finite float (subnormal only if `mayBeSubnormal`).
  llvm::Value* logPositive(llvm::Value* x, bool mayBeSubnormal);

  llvm::IRBuilder<>& b_;
  llvm::Module& m_;
};

}  // namespace kiln::codegen
