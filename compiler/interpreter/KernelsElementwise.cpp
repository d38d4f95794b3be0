// Interpreter kernels of the elementwise, broadcast, comparison and activation ops (chapter11.md).
#include <cmath>
#include <numbers>
#include <type_traits>

#include "compiler/interpreter/Kernels.h"

namespace kiln {
namespace {

constexpr double kSeluLambda = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;

/// Like dispatchNumeric, plus bool (comparisons and select accept any dtype).
template <class F>
Status dispatchAny(DType dt, F&& f) {
  if (dt == DType::Bool) return f.template operator()<bool>();
  return dispatchNumeric(dt, f);
}

template <class T>
bool isNan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  return false;
}

/// For each element of a result, the element of one operand it reads (NumPy broadcasting).
/// The common same-shape case needs no table.
class OperandIndex {
 public:
  OperandIndex(const Tensor& in, const Tensor& out) : same_(in.shape() == out.shape()) {
    assert(in.rank() <= out.rank() && "operand has a higher rank than the result");
    if (!same_) table_ = broadcastIndex(in.shape(), out.shape());
  }
  int64_t operator[](int64_t e) const { return same_ ? e : table_[static_cast<size_t>(e)]; }

 private:
  bool same_;
  std::vector<int64_t> table_;
};

/// z[e] = f(x[.], y[.]) over the broadcast of x and y; T is the operands' element type and R the
/// result's.
template <class T, class R, class F>
void zipBroadcast(const Tensor& x, const Tensor& y, Tensor& z, F f) {
  OperandIndex ix(x, z), iy(y, z);
  const T* px = x.data<T>();
  const T* py = y.data<T>();
  R* pz = z.data<R>();
  for (int64_t e = 0; e < z.size(); ++e) pz[e] = f(px[ix[e]], py[iy[e]]);
}

// ---- Binary arithmetic --------------------------------------------------------------------

enum class Arith { Add, Sub, Mul, Div, Max, Min };

template <Arith A, class T>
T arith(T a, T b) {
  // NaN propagates through maximum/minimum (as NumPy's), rather than depending on operand order.
  if constexpr (A == Arith::Max) return (a > b || isNan(a)) ? a : b;
  else if constexpr (A == Arith::Min) return (a < b || isNan(a)) ? a : b;
  else if constexpr (std::is_integral_v<T>) {
    // Integers wrap around on overflow (two's complement, as LLVM's add/sub/mul compile them)
    // instead of being undefined behaviour; division truncates toward zero (LLVM's sdiv).
    using U = std::make_unsigned_t<T>;
    if constexpr (A == Arith::Add) return static_cast<T>(U(a) + U(b));
    if constexpr (A == Arith::Sub) return static_cast<T>(U(a) - U(b));
    if constexpr (A == Arith::Mul) return static_cast<T>(U(a) * U(b));
    if constexpr (A == Arith::Div) return b == -1 ? static_cast<T>(U(0) - U(a)) : T(a / b);
  } else {
    if constexpr (A == Arith::Add) return a + b;
    if constexpr (A == Arith::Sub) return a - b;
    if constexpr (A == Arith::Mul) return a * b;
    if constexpr (A == Arith::Div) return a / b;
  }
}

template <Arith A>
Status arithKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  const Tensor& y = *ctx.in[1];
  return dispatchNumeric(x.dtype(), [&]<class T>() -> Status {
    if constexpr (A == Arith::Div && std::is_integral_v<T>) {
      // Broadcasting reads every divisor element, so any zero would be divided by.
      for (T v : y.span<T>())
        if (v == 0) return ctx.error("integer division by zero (divisor " + y.type().str() + ")");
    }
    zipBroadcast<T, T>(x, y, *ctx.out[0], [](T a, T b) { return arith<A>(a, b); });
    return Status::ok();
  });
}

Status powKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  const Tensor& y = *ctx.in[1];
  return dispatchFloat(x.dtype(), [&]<class T>() -> Status {
    zipBroadcast<T, T>(x, y, *ctx.out[0], [](T a, T b) { return std::pow(a, b); });
    return Status::ok();
  });
}

// ---- Comparisons and select ---------------------------------------------------------------

enum class Cmp { Eq, Ne, Lt, Le, Gt, Ge };

template <Cmp C>
Status compareKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  const Tensor& y = *ctx.in[1];
  return dispatchAny(x.dtype(), [&]<class T>() -> Status {
    zipBroadcast<T, bool>(x, y, *ctx.out[0], [](T a, T b) {
      if constexpr (C == Cmp::Eq) return a == b;
      if constexpr (C == Cmp::Ne) return a != b;
      if constexpr (C == Cmp::Lt) return a < b;
      if constexpr (C == Cmp::Le) return a <= b;
      if constexpr (C == Cmp::Gt) return a > b;
      if constexpr (C == Cmp::Ge) return a >= b;
    });
    return Status::ok();
  });
}

Status selectKernel(KernelContext& ctx) {
  const Tensor& c = *ctx.in[0];
  const Tensor& a = *ctx.in[1];
  const Tensor& b = *ctx.in[2];
  Tensor& y = *ctx.out[0];
  OperandIndex ic(c, y), ia(a, y), ib(b, y);
  return dispatchAny(y.dtype(), [&]<class T>() -> Status {
    const bool* pc = c.data<bool>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* py = y.data<T>();
    for (int64_t e = 0; e < y.size(); ++e) py[e] = pc[ic[e]] ? pa[ia[e]] : pb[ib[e]];
    return Status::ok();
  });
}

// ---- Unary ops ----------------------------------------------------------------------------

/// y[i] = f(x[i]) for int and float x.
template <class F>
Status mapNumeric(KernelContext& ctx, F f) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  return dispatchNumeric(x.dtype(), [&]<class T>() -> Status {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.size(); ++i) py[i] = f(px[i]);
    return Status::ok();
  });
}

/// y[i] = f(x[i], i) for float x; f is generic so one body serves float and double.
template <class F>
Status mapFloat(KernelContext& ctx, F f) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  return dispatchFloat(x.dtype(), [&]<class T>() -> Status {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.size(); ++i) py[i] = static_cast<T>(f(px[i], i));
    return Status::ok();
  });
}

template <class T>
T wrappingNeg(T a) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(U(0) - U(a));  // -INT_MIN wraps to INT_MIN, as in LLVM.
  } else {
    return -a;
  }
}

Status negKernel(KernelContext& ctx) {
  return mapNumeric(ctx, [](auto z) { return wrappingNeg(z); });
}
Status absKernel(KernelContext& ctx) {
  return mapNumeric(ctx, [](auto z) {
    if constexpr (std::is_integral_v<decltype(z)>) return z < 0 ? wrappingNeg(z) : z;
    else return std::abs(z);
  });
}
Status expKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return std::exp(z); });
}
Status logKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return std::log(z); });
}
Status sqrtKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return std::sqrt(z); });
}
Status rsqrtKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return decltype(z)(1) / std::sqrt(z); });
}
Status squareKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return z * z; });
}
Status erfKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return std::erf(z); });
}

// ---- Activations --------------------------------------------------------------------------
// The rectifier family is written `z < 0 ? αz : z` (Keras and PyTorch), which equals the
// contract's max(αz, z) for α <= 1 and lets NaN through.

Status sigmoidKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return stableSigmoid(z); });
}
Status tanhKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return std::tanh(z); });
}
Status reluKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return z < 0 ? decltype(z)(0) : z; });
}
Status leakyReluKernel(KernelContext& ctx) {
  const double alpha = ctx.node.f("alpha");
  return mapFloat(ctx, [&](auto z, int64_t) {
    using T = decltype(z);
    return z < 0 ? T(alpha) * z : z;
  });
}

Status rreluKernel(KernelContext& ctx) {
  const double lower = ctx.node.f("lower"), upper = ctx.node.f("upper");
  const bool training = ctx.node.b("training");
  const rt::RandomStream rs = ctx.random();
  return mapFloat(ctx, [&](auto z, int64_t i) {
    using T = decltype(z);
    if (!(z < 0)) return z;
    // Draw i depends on i alone, so drawing only for negative z gives the same alphas.
    double alpha = training ? lower + (upper - lower) * rs.uniform(static_cast<uint64_t>(i))
                            : (lower + upper) / 2;
    return T(alpha) * z;
  });
}

Status preluKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  const Tensor& alpha = *ctx.in[1];
  Tensor& y = *ctx.out[0];
  return dispatchFloat(x.dtype(), [&]<class T>() -> Status {
    zipBroadcast<T, T>(x, alpha, y, [](T z, T a) { return z < 0 ? a * z : z; });
    return Status::ok();
  });
}

// expm1 keeps e^z - 1 exact for small |z| and saturates to -1 (no overflow) for large negative z.
Status eluKernel(KernelContext& ctx) {
  const double alpha = ctx.node.f("alpha");
  return mapFloat(ctx, [&](auto z, int64_t) {
    using T = decltype(z);
    return z >= 0 ? z : T(alpha) * std::expm1(z);
  });
}
Status seluKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) {
    using T = decltype(z);
    return T(kSeluLambda) * (z >= 0 ? z : T(kSeluAlpha) * std::expm1(z));
  });
}

Status geluKernel(KernelContext& ctx) {
  const std::string form = ctx.node.s("approximate");
  if (form == "none") {
    // 0.5z(1 + erf(z/√2)) = 0.5z·erfc(-z/√2): erfc avoids the cancellation 1 + erf for z << 0.
    return mapFloat(ctx, [](auto z, int64_t) {
      using T = decltype(z);
      return T(0.5) * z * std::erfc(-z / std::numbers::sqrt2_v<T>);
    });
  }
  if (form == "tanh") {
    // 0.5(1 + tanh u) = σ(2u): the same value, without cancellation for z << 0 and with no
    // overflow of z³ mattering (σ(±inf) is 1 or 0).
    return mapFloat(ctx, [](auto z, int64_t) {
      using T = decltype(z);
      const T k = std::sqrt(T(2) / std::numbers::pi_v<T>);
      T u = k * (z + T(0.044715) * z * z * z);
      return z * stableSigmoid(T(2) * u);
    });
  }
  if (form == "sigmoid") {
    return mapFloat(ctx, [](auto z, int64_t) {
      using T = decltype(z);
      return z * stableSigmoid(T(1.702) * z);
    });
  }
  return ctx.error("unknown gelu approximation '" + form + "' (expected none, tanh or sigmoid)");
}

Status swishKernel(KernelContext& ctx) {
  // A learnable beta arrives as a scalar operand ([] or [1]) and overrides the attribute.
  const double beta = ctx.in.size() > 1 ? ctx.in[1]->getDouble(0) : ctx.node.f("beta");
  return mapFloat(ctx, [&](auto z, int64_t) {
    using T = decltype(z);
    return z * stableSigmoid(T(beta) * z);
  });
}
Status mishKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return z * std::tanh(stableSoftplus(z)); });
}
Status softplusKernel(KernelContext& ctx) {
  return mapFloat(ctx, [](auto z, int64_t) { return stableSoftplus(z); });
}

// ---- Dropout ------------------------------------------------------------------------------

Status dropoutKernel(KernelContext& ctx) {
  const double rate = ctx.node.f("rate");
  const bool training = ctx.node.b("training");
  const rt::RandomStream rs = ctx.random();
  return mapFloat(ctx, [&](auto z, int64_t i) {
    using T = decltype(z);
    if (!training) return z;
    // Keep with probability 1 - rate; dividing (rather than multiplying by a rounded 1/(1-p))
    // keeps the scaling correctly rounded.
    bool keep = rs.uniform(static_cast<uint64_t>(i)) >= rate;
    return keep ? T(double(z) / (1.0 - rate)) : T(0);
  });
}

Status alphaDropoutKernel(KernelContext& ctx) {
  const double p = ctx.node.f("rate");
  const bool training = ctx.node.b("training");
  const rt::RandomStream rs = ctx.random();
  // Dropped units go to SELU's negative saturation α' = -λα; then a·x + b restores the mean and
  // variance of a standardized input (Klambauer et al.; Keras AlphaDropout).
  const double alphaP = -kSeluLambda * kSeluAlpha;
  const double a = 1.0 / std::sqrt((1 - p) * (1 + p * alphaP * alphaP));
  const double b = -a * alphaP * p;
  return mapFloat(ctx, [&](auto z, int64_t i) {
    using T = decltype(z);
    if (!training) return z;
    double v = rs.uniform(static_cast<uint64_t>(i)) >= p ? double(z) : alphaP;
    return T(a * v + b);
  });
}

}  // namespace

// Float -> integer truncates toward zero (as C++ and LLVM's fptosi do); a value outside the
// integer's range is an error rather than undefined behaviour.
static Status castKernel(KernelContext& ctx) {
  const Tensor& x = *ctx.in[0];
  Tensor& y = *ctx.out[0];
  if (x.dtype() == DType::Int64 && y.dtype() == DType::Int32) {
    *ctx.out[0] = x.castTo(DType::Int32);
    return Status::ok();
  }
  if (isInteger(x.dtype()) && isInteger(y.dtype())) {
    *ctx.out[0] = x.castTo(y.dtype());
    return Status::ok();
  }
  for (int64_t i = 0; i < x.size(); ++i) {
    double v = x.getDouble(i);
    if (isInteger(y.dtype())) {
      double lo = y.dtype() == DType::Int32 ? -2147483648.0 : -9223372036854775808.0;
      if (!(v >= lo && v < -lo))
        return ctx.error("cannot cast " + std::to_string(v) + " to " + std::string(dtypeName(y.dtype())));
    }
    y.setDouble(i, v);
  }
  return Status::ok();
}

void registerElementwiseKernels(KernelTable& t) {
  auto set = [&](OpKind op, KernelFn fn) { t[static_cast<size_t>(op)] = fn; };
  set(OpKind::Cast, &castKernel);
  set(OpKind::Add, &arithKernel<Arith::Add>);
  set(OpKind::Sub, &arithKernel<Arith::Sub>);
  set(OpKind::Mul, &arithKernel<Arith::Mul>);
  set(OpKind::Div, &arithKernel<Arith::Div>);
  set(OpKind::Maximum, &arithKernel<Arith::Max>);
  set(OpKind::Minimum, &arithKernel<Arith::Min>);
  set(OpKind::Pow, &powKernel);

  set(OpKind::Neg, &negKernel);
  set(OpKind::Abs, &absKernel);
  set(OpKind::Exp, &expKernel);
  set(OpKind::Log, &logKernel);
  set(OpKind::Sqrt, &sqrtKernel);
  set(OpKind::Rsqrt, &rsqrtKernel);
  set(OpKind::Square, &squareKernel);
  set(OpKind::Erf, &erfKernel);

  set(OpKind::Equal, &compareKernel<Cmp::Eq>);
  set(OpKind::NotEqual, &compareKernel<Cmp::Ne>);
  set(OpKind::Less, &compareKernel<Cmp::Lt>);
  set(OpKind::LessEqual, &compareKernel<Cmp::Le>);
  set(OpKind::Greater, &compareKernel<Cmp::Gt>);
  set(OpKind::GreaterEqual, &compareKernel<Cmp::Ge>);
  set(OpKind::Select, &selectKernel);

  set(OpKind::Sigmoid, &sigmoidKernel);
  set(OpKind::Tanh, &tanhKernel);
  set(OpKind::Relu, &reluKernel);
  set(OpKind::LeakyRelu, &leakyReluKernel);
  set(OpKind::RRelu, &rreluKernel);
  set(OpKind::PRelu, &preluKernel);
  set(OpKind::Elu, &eluKernel);
  set(OpKind::Selu, &seluKernel);
  set(OpKind::Gelu, &geluKernel);
  set(OpKind::Swish, &swishKernel);
  set(OpKind::Mish, &mishKernel);
  set(OpKind::Softplus, &softplusKernel);
  set(OpKind::Dropout, &dropoutKernel);
  set(OpKind::AlphaDropout, &alphaDropoutKernel);
}

}  // namespace kiln
