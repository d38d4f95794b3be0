// Gradient rules of the elementwise, broadcast, comparison and activation ops (chapter11.md).
// Each rule's derivative is written above it; g is d loss / d result, y the forward result.
#include <cmath>
#include <numbers>
#include <string>

#include "compiler/autodiff/GradRules.h"

namespace kiln {
namespace {

// The same constants as the interpreter's selu and alpha_dropout kernels.
constexpr double kSeluLambda = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;

using Grads = std::vector<Value*>;

/// The emitting helpers: short names so each rule reads as its formula.
struct Emit {
  GradContext& c;
  Builder& b;
  explicit Emit(GradContext& ctx) : c(ctx), b(ctx.b) {}

  Value* k(double v) const { return c.c(v); }
  Value* add(Value* p, Value* q) const { return b.add(p, q); }
  Value* sub(Value* p, Value* q) const { return b.sub(p, q); }
  Value* mul(Value* p, Value* q) const { return b.mul(p, q); }
  Value* mul(Value* p, double v) const { return b.mul(p, k(v)); }
  Value* div(Value* p, Value* q) const { return b.div(p, q); }
  Value* neg(Value* p) const { return b.neg(p); }
  Value* square(Value* p) const { return b.square(p); }
  Value* exp(Value* p) const { return b.exp(p); }
  Value* unary(OpKind op, Value* p) const { return b.op(op, {p}); }
  Value* sigmoid(Value* p) const { return unary(OpKind::Sigmoid, p); }
  /// 1 - p
  Value* oneMinus(Value* p) const { return sub(k(1), p); }
  Value* cmp(OpKind op, Value* p, Value* q) const { return b.op(op, {p, q}); }
  Value* less0(Value* p) const { return cmp(OpKind::Less, p, k(0)); }
  Value* select(Value* cond, Value* t, Value* f) const {
    return b.op(OpKind::Select, {cond, t, f});
  }
  /// cond ? t : 0
  Value* selectOr0(Value* cond, Value* t) const { return select(cond, t, k(0)); }
  /// `grad` (the broadcast result's shape) summed down to operand i's shape.
  Value* reduceTo(size_t i, Value* grad) const {
    return unbroadcast(b, grad, c.x(i)->type().shape);
  }
};

/// The node whose random numbers a dropout/rrelu node uses: its `noise_from`, else itself. A
/// gradient names the same source so it sees the forward pass's mask.
std::string noiseSource(const Node& n) {
  std::string from = n.s("noise_from");
  return from.empty() ? n.name() : from;
}

/// The common shape of a unary rule: d loss/dx = g * f'(x), built only when wanted.
template <class F>
Grads unaryGrad(GradContext& c, F dx) {
  if (!c.want(0)) return {nullptr};
  Emit e(c);
  return {dx(e, c.x(), c.g())};
}

// ---- Binary arithmetic --------------------------------------------------------------------
// Each operand's gradient is summed over the axes broadcasting grew (unbroadcast).

// d(x + y) = dx + dy
Grads addGrad(GradContext& c) {
  Emit e(c);
  return {c.want(0) ? e.reduceTo(0, c.g()) : nullptr, c.want(1) ? e.reduceTo(1, c.g()) : nullptr};
}

// d(x - y) = dx - dy
Grads subGrad(GradContext& c) {
  Emit e(c);
  return {c.want(0) ? e.reduceTo(0, c.g()) : nullptr,
          c.want(1) ? e.reduceTo(1, e.neg(c.g())) : nullptr};
}

// d(x·y) = y·dx + x·dy
Grads mulGrad(GradContext& c) {
  Emit e(c);
  return {c.want(0) ? e.reduceTo(0, e.mul(c.g(), c.x(1))) : nullptr,
          c.want(1) ? e.reduceTo(1, e.mul(c.g(), c.x(0))) : nullptr};
}

// z = x/y: dz/dx = 1/y, dz/dy = -x/y² = -z/y (the forward z saves a product).
Grads divGrad(GradContext& c) {
  Emit e(c);
  return {c.want(0) ? e.reduceTo(0, e.div(c.g(), c.x(1))) : nullptr,
          c.want(1) ? e.reduceTo(1, e.neg(e.div(e.mul(c.g(), c.y()), c.x(1)))) : nullptr};
}

// z = max(x, y) (min: `wins` is less): dz/dx = 1 where x wins, 0 where y wins. At a tie the
// gradient is split half and half (PyTorch's choice; TF gives all of it to x): the result is
// symmetric in x and y and it is what the central difference measures there.
Grads extremumGrad(GradContext& c, OpKind wins) {
  Emit e(c);
  Value* x = c.x(0);
  Value* y = c.x(1);
  Value* tie = e.selectOr0(e.cmp(OpKind::Equal, x, y), e.mul(c.g(), 0.5));
  return {c.want(0) ? e.reduceTo(0, e.select(e.cmp(wins, x, y), c.g(), tie)) : nullptr,
          c.want(1) ? e.reduceTo(1, e.select(e.cmp(wins, y, x), c.g(), tie)) : nullptr};
}
Grads maximumGrad(GradContext& c) { return extremumGrad(c, OpKind::Greater); }
Grads minimumGrad(GradContext& c) { return extremumGrad(c, OpKind::Less); }

// z = x^y: dz/dx = y·x^(y-1) (written with pow, not z/x, so x = 0 works);
// dz/dy = z·log x for x > 0, and 0 elsewhere (a negative base has a real power only at integer
// y, where it is not differentiable in y; TF makes the same choice). log reads a safe base so
// the unused branch is not NaN.
Grads powGrad(GradContext& c) {
  Emit e(c);
  Value* x = c.x(0);
  Value* y = c.x(1);
  Grads r(2);
  if (c.want(0))
    r[0] = e.reduceTo(0, e.mul(c.g(), e.mul(y, e.b.op(OpKind::Pow, {x, e.sub(y, e.k(1))}))));
  if (c.want(1)) {
    Value* positive = e.cmp(OpKind::Greater, x, e.k(0));
    Value* logX = e.unary(OpKind::Log, e.select(positive, x, e.k(1)));
    r[1] = e.reduceTo(1, e.mul(c.g(), e.selectOr0(positive, e.mul(c.y(), logX))));
  }
  return r;
}

// ---- Unary arithmetic ---------------------------------------------------------------------

// d(-x) = -dx
Grads negGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value*, Value* g) { return e.neg(g); });
}

// |x|' = sign(x), with sign(0) = 0 (TF and PyTorch).
Grads absGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) {
    return e.select(e.less0(x), e.neg(g), e.selectOr0(e.cmp(OpKind::Greater, x, e.k(0)), g));
  });
}

// (e^x)' = e^x = y
Grads expGrad(GradContext& c) {
  return unaryGrad(c, [&](Emit& e, Value*, Value* g) { return e.mul(g, c.y()); });
}

// (log x)' = 1/x
Grads logGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) { return e.div(g, x); });
}

// (√x)' = 1/(2√x) = 0.5/y
Grads sqrtGrad(GradContext& c) {
  return unaryGrad(c, [&](Emit& e, Value*, Value* g) { return e.mul(e.div(g, c.y()), 0.5); });
}

// (x^(-1/2))' = -1/2·x^(-3/2) = -0.5·y³
Grads rsqrtGrad(GradContext& c) {
  return unaryGrad(c, [&](Emit& e, Value*, Value* g) {
    return e.mul(e.mul(g, -0.5), e.mul(c.y(), e.square(c.y())));
  });
}

// (x²)' = 2x
Grads squareGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) { return e.mul(g, e.mul(x, 2.0)); });
}

// erf'(x) = 2/√π · e^(-x²)
Grads erfGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) {
    return e.mul(g, e.mul(e.exp(e.neg(e.square(x))), 2 / std::sqrt(std::numbers::pi)));
  });
}

// ---- Select -------------------------------------------------------------------------------

// y = c ? t : f: dy/dt = [c], dy/df = [!c]; the bool condition has no gradient.
Grads selectGrad(GradContext& c) {
  Emit e(c);
  Value* cond = c.x(0);
  Grads r(3);
  if (c.want(1)) r[1] = e.reduceTo(1, e.selectOr0(cond, c.g()));
  if (c.want(2)) r[2] = e.reduceTo(2, e.select(cond, e.k(0), c.g()));
  return r;
}

// ---- Activations --------------------------------------------------------------------------
// The rectifiers' kernels take the z < 0 branch for negative z only, so each rule's kink
// convention below matches its kernel: relu'(0) = 0 (chapter11.md), the leaky ones' 1.

// σ'(x) = σ(x)(1 - σ(x)) = y(1 - y)
Grads sigmoidGrad(GradContext& c) {
  return unaryGrad(
      c, [&](Emit& e, Value*, Value* g) { return e.mul(g, e.mul(c.y(), e.oneMinus(c.y()))); });
}

// tanh'(x) = 1 - tanh²(x) = 1 - y²
Grads tanhGrad(GradContext& c) {
  return unaryGrad(
      c, [&](Emit& e, Value*, Value* g) { return e.mul(g, e.oneMinus(e.square(c.y()))); });
}

// relu'(x) = [x > 0]
Grads reluGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) {
    return e.selectOr0(e.cmp(OpKind::Greater, x, e.k(0)), g);
  });
}

// leaky_relu'(x) = α for x < 0, else 1
Grads leakyReluGrad(GradContext& c) {
  const double alpha = c.node.f("alpha");
  return unaryGrad(
      c, [&](Emit& e, Value* x, Value* g) { return e.select(e.less0(x), e.mul(g, alpha), g); });
}

// rrelu'(x) = α for x < 0, else 1. Inference: α = (lower + upper)/2. Training: α is the forward
// pass's random draw per element; an rrelu with the same noise source applied to -1 everywhere
// returns exactly -α at each element (its draw i depends on i alone).
Grads rreluGrad(GradContext& c) {
  const Node& n = c.node;
  return unaryGrad(c, [&](Emit& e, Value* x, Value* g) {
    Value* slope;
    if (!n.b("training")) {
      slope = e.k((n.f("lower") + n.f("upper")) / 2);
    } else {
      Value* minusOnes = e.sub(e.mul(x, 0.0), e.k(1));
      slope = e.neg(e.b.op(OpKind::RRelu, {minusOnes},
                           {{"lower", n.f("lower")},
                            {"upper", n.f("upper")},
                            {"training", true},
                            {"noise_from", noiseSource(n)}}));
    }
    return e.select(e.less0(x), e.mul(g, slope), g);
  });
}

// prelu(x, α) = x < 0 ? αx : x: d/dx = α for x < 0, else 1; d/dα = x for x < 0, else 0,
// summed over the axes α is broadcast along (one α per unit).
Grads preluGrad(GradContext& c) {
  Emit e(c);
  Value* x = c.x(0);
  Value* alpha = c.x(1);
  Value* negative = e.less0(x);
  return {c.want(0) ? e.reduceTo(0, e.select(negative, e.mul(c.g(), alpha), c.g())) : nullptr,
          c.want(1) ? e.reduceTo(1, e.selectOr0(negative, e.mul(c.g(), x))) : nullptr};
}

// elu'(x) = α·e^x for x < 0, else 1. e^x is taken directly rather than as y + α, which would
// cancel for x << 0; where x >= 0 the select discards it.
Grads eluGrad(GradContext& c) {
  const double alpha = c.node.f("alpha");
  return unaryGrad(c, [&](Emit& e, Value* x, Value* g) {
    return e.select(e.less0(x), e.mul(g, e.mul(e.exp(x), alpha)), g);
  });
}

// selu'(x) = λα·e^x for x < 0, else λ
Grads seluGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) {
    return e.select(e.less0(x), e.mul(g, e.mul(e.exp(x), kSeluLambda * kSeluAlpha)),
                    e.mul(g, kSeluLambda));
  });
}

/// d/dx [x·σ(t)] = s + x·s(1 - s)·t' with s = σ(t): the shape of the gelu approximations and
/// of swish. `xdt` is x·t'. Saturated s (0 or 1) makes the second term exactly 0, so nothing
/// overflows for large |x|.
Value* xSigmoidSlope(Emit& e, Value* s, Value* xdt) {
  return e.add(s, e.mul(xdt, e.mul(s, e.oneMinus(s))));
}

// gelu, exact: f = x·Φ(x), f' = Φ(x) + x·φ(x), Φ(x) = (1 + erf(x/√2))/2, φ(x) = e^(-x²/2)/√(2π).
// tanh form: f = x·σ(t), t = 2√(2/π)(x + 0.044715x³) (as the kernel computes it: 0.5(1 + tanh u)
// = σ(2u)), f' = s + x·s(1 - s)·t', t' = 2√(2/π)(1 + 3·0.044715x²).
// sigmoid form: f = x·σ(1.702x), f' = s + 1.702x·s(1 - s).
Grads geluGrad(GradContext& c) {
  const std::string form = c.node.s("approximate");
  return unaryGrad(c, [&](Emit& e, Value* x, Value* g) -> Value* {
    if (form == "tanh") {
      const double k2 = 2 * std::sqrt(2 / std::numbers::pi), a = 0.044715;
      Value* x2 = e.square(x);
      Value* t = e.mul(e.mul(x, k2), e.add(e.mul(x2, a), e.k(1)));
      Value* dt = e.mul(e.add(e.mul(x2, 3 * a), e.k(1)), k2);
      return e.mul(g, xSigmoidSlope(e, e.sigmoid(t), e.mul(x, dt)));
    }
    if (form == "sigmoid") {
      Value* t = e.mul(x, 1.702);
      return e.mul(g, xSigmoidSlope(e, e.sigmoid(t), t));
    }
    Value* cdf = e.mul(e.add(e.unary(OpKind::Erf, e.mul(x, std::numbers::sqrt2 / 2)), e.k(1)), 0.5);
    Value* pdf = e.mul(e.exp(e.mul(e.square(x), -0.5)), 1 / std::sqrt(2 * std::numbers::pi));
    return e.mul(g, e.add(cdf, e.mul(x, pdf)));
  });
}

// swish = x·σ(βx), s = σ(βx): d/dx = s + βx·s(1 - s); d/dβ = x²·s(1 - s), summed to β's
// shape ([] or [1]) when β is a (learnable) operand rather than the attribute.
Grads swishGrad(GradContext& c) {
  Emit e(c);
  const bool learnable = c.node.numOperands() > 1;
  Value* x = c.x(0);
  Value* beta = learnable ? c.x(1) : e.k(c.node.f("beta"));
  Value* bx = e.mul(x, beta);
  Value* s = e.sigmoid(bx);
  Grads r(c.node.numOperands());
  if (c.want(0)) r[0] = e.reduceTo(0, e.mul(c.g(), xSigmoidSlope(e, s, bx)));
  if (learnable && c.want(1))
    r[1] = e.reduceTo(1, e.mul(c.g(), e.mul(e.square(x), e.mul(s, e.oneMinus(s)))));
  return r;
}

// mish = x·tanh(softplus(x)), t = tanh(softplus(x)): mish' = t + x·(1 - t²)·σ(x), since
// softplus' = σ. Every piece is bounded (t in (-1, 1), σ in (0, 1)), so nothing overflows; for
// x >> 0 the term x(1 - t²) goes to 0 as x·e^(-2x).
Grads mishGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) {
    Value* t = e.unary(OpKind::Tanh, e.unary(OpKind::Softplus, x));
    return e.mul(g, e.add(t, e.mul(e.mul(x, e.oneMinus(e.square(t))), e.sigmoid(x))));
  });
}

// softplus'(x) = e^x/(1 + e^x) = σ(x), through the stable sigmoid op.
Grads softplusGrad(GradContext& c) {
  return unaryGrad(c, [](Emit& e, Value* x, Value* g) { return e.mul(g, e.sigmoid(x)); });
}

// ---- Dropout ------------------------------------------------------------------------------

/// dropout(g) with the forward node's mask: g/(1-p) where the forward pass kept, else 0.
Value* sameMaskDropout(Emit& e, const Node& n, Value* g) {
  return e.b.op(OpKind::Dropout, {g},
                {{"rate", n.f("rate")}, {"training", true}, {"noise_from", noiseSource(n)}});
}

// Training: y = [keep]·x/(1-p), so dx = [keep]·g/(1-p) = dropout(g) on the same mask.
// Inference: the identity.
Grads dropoutGrad(GradContext& c) {
  return unaryGrad(c, [&](Emit& e, Value*, Value* g) {
    return c.node.b("training") ? sameMaskDropout(e, c.node, g) : g;
  });
}

// Training: y = a·([keep]·x + [drop]·α') + b, so dx = a·[keep]·g = a(1-p)·dropout(g) on the
// same mask, with a = ((1-p)(1 + p·α'²))^(-1/2), α' = -λα (SELU's). Inference: the identity.
Grads alphaDropoutGrad(GradContext& c) {
  return unaryGrad(c, [&](Emit& e, Value*, Value* g) -> Value* {
    if (!c.node.b("training")) return g;
    const double p = c.node.f("rate"), alphaP = -kSeluLambda * kSeluAlpha;
    const double a = 1.0 / std::sqrt((1 - p) * (1 + p * alphaP * alphaP));
    return e.mul(sameMaskDropout(e, c.node, g), a * (1 - p));
  });
}

}  // namespace

void registerElementwiseGrads(GradTable& t) {
  auto set = [&](OpKind op, GradFn fn) { t[static_cast<size_t>(op)].fn = fn; };
  set(OpKind::Add, &addGrad);
  set(OpKind::Sub, &subGrad);
  set(OpKind::Mul, &mulGrad);
  set(OpKind::Div, &divGrad);
  set(OpKind::Maximum, &maximumGrad);
  set(OpKind::Minimum, &minimumGrad);
  set(OpKind::Pow, &powGrad);

  set(OpKind::Neg, &negGrad);
  set(OpKind::Abs, &absGrad);
  set(OpKind::Exp, &expGrad);
  set(OpKind::Log, &logGrad);
  set(OpKind::Sqrt, &sqrtGrad);
  set(OpKind::Rsqrt, &rsqrtGrad);
  set(OpKind::Square, &squareGrad);
  set(OpKind::Erf, &erfGrad);

  // Comparisons give bool results, which carry no gradient; select takes none for its condition.
  for (OpKind op : {OpKind::Equal, OpKind::NotEqual, OpKind::Less, OpKind::LessEqual,
                    OpKind::Greater, OpKind::GreaterEqual})
    t[static_cast<size_t>(op)].notDifferentiable = true;
  set(OpKind::Select, &selectGrad);

  set(OpKind::Sigmoid, &sigmoidGrad);
  set(OpKind::Tanh, &tanhGrad);
  set(OpKind::Relu, &reluGrad);
  set(OpKind::LeakyRelu, &leakyReluGrad);
  set(OpKind::RRelu, &rreluGrad);
  set(OpKind::PRelu, &preluGrad);
  set(OpKind::Elu, &eluGrad);
  set(OpKind::Selu, &seluGrad);
  set(OpKind::Gelu, &geluGrad);
  set(OpKind::Swish, &swishGrad);
  set(OpKind::Mish, &mishGrad);
  set(OpKind::Softplus, &softplusGrad);
  set(OpKind::Dropout, &dropoutGrad);
  set(OpKind::AlphaDropout, &alphaDropoutGrad);
}

}  // namespace kiln
