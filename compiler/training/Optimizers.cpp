// Optimizer updates in the graph (chapter11.md, "Optimizers"), one parameter at a time. Each
// rule's formula is written above it; slots are parameters named `<param>/<slot>`.
#include "compiler/training/TrainingParts.h"

namespace kiln::training {
namespace {

using frontend::OptimizerKind;

struct Ctx {
  Builder& b;
  Node* param;
  Value* theta;
  Value* g;
  DType dt;
  ParamUpdate out;

  Value* c(double v) { return b.scalar(v, dt); }
  Value* slot(const std::string& name) {
    Node* p = b.graph().findNode(param->name() + "/" + name);
    if (!p) {
      Value* v = b.parameter(param->name() + "/" + name, param->result()->type().shape,
                             {{"trainable", false}, {"init", std::string("zeros")}, {"dtype", dt}});
      return v;
    }
    return p->result();
  }
  void setSlot(const std::string& name, Value* newValue) {
    out.slots.push_back({b.graph().findNode(param->name() + "/" + name), newValue});
  }
};

// m <- beta*m + (1 - beta)*g and v <- beta2*v + (1 - beta2)*g^2, the adam family's moments.
Value* firstMoment(Ctx& x, Value* beta1) {
  Value* m = x.slot("m");
  Value* m2 = x.b.add(x.b.mul(beta1, m), x.b.mul(x.b.sub(x.c(1), beta1), x.g));
  x.setSlot("m", m2);
  return m2;
}
Value* secondMoment(Ctx& x, double beta2) {
  Value* v = x.slot("v");
  Value* v2 = x.b.add(x.b.mul(x.c(beta2), v), x.b.mul(x.c(1 - beta2), x.b.square(x.g)));
  x.setSlot("v", v2);
  return v2;
}
// 1 - beta^t
Value* biasCorrection(Ctx& x, Value* beta, Value* t) {
  return x.b.sub(x.c(1), x.b.op(OpKind::Pow, {beta, t}));
}

}  // namespace

ParamUpdate buildOptimizerUpdate(Builder& b, const frontend::OptimizerSpec& opt, const StepValues& s,
                                 Node* param, Value* grad) {
  Ctx x{b, param, param->result(), grad, param->result()->type().dtype, {}};
  Builder& B = b;
  Value* lr = s.lr;
  Value* beta = s.momentum ? s.momentum : x.c(opt.kind == OptimizerKind::Momentum || opt.kind == OptimizerKind::Nesterov
                                                 ? opt.momentum
                                                 : opt.beta1);
  switch (opt.kind) {
    case OptimizerKind::Sgd:
      // theta <- theta - eta*g
      x.out.newValue = B.sub(x.theta, B.mul(lr, x.g));
      break;
    case OptimizerKind::Momentum: {
      // m <- beta*m - eta*g; theta <- theta + m
      Value* m = B.sub(B.mul(beta, x.slot("momentum")), B.mul(lr, x.g));
      x.setSlot("momentum", m);
      x.out.newValue = B.add(x.theta, m);
      break;
    }
    case OptimizerKind::Nesterov: {
      // m <- beta*m - eta*g; theta <- theta + beta*m - eta*g
      Value* m = B.sub(B.mul(beta, x.slot("momentum")), B.mul(lr, x.g));
      x.setSlot("momentum", m);
      x.out.newValue = B.sub(B.add(x.theta, B.mul(beta, m)), B.mul(lr, x.g));
      break;
    }
    case OptimizerKind::Adagrad: {
      // s <- s + g*g; theta <- theta - eta*g / sqrt(s + eps)
      Value* acc = B.add(x.slot("accumulator"), B.square(x.g));
      x.setSlot("accumulator", acc);
      x.out.newValue = B.sub(x.theta, B.div(B.mul(lr, x.g), B.op(OpKind::Sqrt, {B.add(acc, x.c(opt.epsilon))})));
      break;
    }
    case OptimizerKind::RMSProp: {
      // s <- rho*s + (1 - rho)*g*g; theta <- theta - eta*g / sqrt(s + eps)
      Value* acc = B.add(B.mul(x.c(opt.rho), x.slot("rms")), B.mul(x.c(1 - opt.rho), B.square(x.g)));
      x.setSlot("rms", acc);
      x.out.newValue = B.sub(x.theta, B.div(B.mul(lr, x.g), B.op(OpKind::Sqrt, {B.add(acc, x.c(opt.epsilon))})));
      break;
    }
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: {
      // adamw first decays theta <- theta - eta*lambda*theta (decoupled: not part of g).
      Value* theta = x.theta;
      if (opt.kind == OptimizerKind::AdamW) theta = B.sub(theta, B.mul(B.mul(lr, x.c(opt.weightDecay)), theta));
      // m_hat = m / (1 - beta1^t); v_hat = v / (1 - beta2^t);
      // theta <- theta - eta * m_hat / (sqrt(v_hat) + eps)
      Value* m = firstMoment(x, beta);
      Value* v = secondMoment(x, opt.beta2);
      Value* mHat = B.div(m, biasCorrection(x, beta, s.t));
      Value* vHat = B.div(v, biasCorrection(x, x.c(opt.beta2), s.t));
      x.out.newValue = B.sub(theta, B.div(B.mul(lr, mHat), B.add(B.op(OpKind::Sqrt, {vHat}), x.c(opt.epsilon))));
      break;
    }
    case OptimizerKind::Adamax: {
      // u <- max(beta2*u, |g|); theta <- theta - eta/(1 - beta1^t) * m / (u + eps)
      Value* m = firstMoment(x, beta);
      Value* u = B.op(OpKind::Maximum, {B.mul(x.c(opt.beta2), x.slot("u")), B.op(OpKind::Abs, {x.g})});
      x.setSlot("u", u);
      Value* step = B.div(lr, biasCorrection(x, beta, s.t));
      x.out.newValue = B.sub(x.theta, B.mul(step, B.div(m, B.add(u, x.c(opt.epsilon)))));
      break;
    }
    case OptimizerKind::Nadam: {
      // PyTorch's NAdam (Dozat 2016 with momentum decay psi):
      //   mu_t = beta1*(1 - 0.5*0.96^(t*psi)), P_t = prod_{i<=t} mu_i;
      //   denom = sqrt(v / (1 - beta2^t)) + eps;
      //   theta <- theta - eta*(1 - mu_t)/(1 - P_t) * g/denom
      //                  - eta*mu_{t+1}/(1 - P_t*mu_{t+1}) * m/denom
      Value* m = firstMoment(x, beta);
      Value* v = secondMoment(x, opt.beta2);
      Value* denom = B.add(B.op(OpKind::Sqrt, {B.div(v, biasCorrection(x, x.c(opt.beta2), s.t))}), x.c(opt.epsilon));
      Value* gTerm = B.div(B.mul(lr, B.sub(x.c(1), s.mu)), B.sub(x.c(1), s.muProduct));
      Value* mTerm = B.div(B.mul(lr, s.muNext), B.sub(x.c(1), B.mul(s.muProduct, s.muNext)));
      x.out.newValue = B.sub(B.sub(x.theta, B.mul(gTerm, B.div(x.g, denom))), B.mul(mTerm, B.div(m, denom)));
      break;
    }
  }
  return x.out;
}

}  // namespace kiln::training
