// The training-step graph: forward in training mode -> loss + l1/l2 -> gradients -> clipping ->
// optimizer updates -> max-norm -> batch-norm moving averages -> step counter.
#include "compiler/training/TrainingGraph.h"

#include <cmath>

#include "compiler/autodiff/Autodiff.h"
#include "compiler/training/TrainingParts.h"
#include "ir/Builder.h"
#include "ir/Verifier.h"

namespace kiln {

void setTrainingMode(Graph& g, bool training) {
  for (Node* n : g.nodes())
    switch (n->op()) {
      case OpKind::BatchNorm: case OpKind::Dropout: case OpKind::AlphaDropout: case OpKind::RRelu:
        n->setAttr("training", training);
        break;
      default:
        break;
    }
}

namespace {

const GraphOutput* findOutput(const Graph& g, const std::string& name) {
  for (const GraphOutput& o : g.outputs())
    if (o.name == name) return &o;
  return nullptr;
}

// loss += l1 * sum|w| + l2 * sum w^2 for every parameter that asks for it.
Value* addRegularization(Builder& b, Graph& g, Value* loss) {
  b.setPrefix("regularization/");
  for (Node* p : g.parameters()) {
    double l1 = p->f("l1"), l2 = p->f("l2");
    if (l1 == 0 && l2 == 0) continue;
    Value* w = p->result();
    DType dt = loss->type().dtype;
    if (l1 != 0) loss = b.add(loss, b.mul(b.scalar(l1, dt), b.reduceSum(b.op(OpKind::Abs, {w}), {})));
    if (l2 != 0) loss = b.add(loss, b.mul(b.scalar(l2, dt), b.reduceSum(b.square(w), {})));
  }
  return loss;
}

// Max-norm: each column w of the kernel (a unit's incoming weights) is rescaled to
// w * r / ||w|| when ||w|| > r, i.e. w * r / max(||w||, r).
Value* applyMaxNorm(Builder& b, Value* w, double r) {
  DType dt = w->type().dtype;
  Value* norms = b.op(OpKind::Sqrt, {b.reduceSum(b.square(w), {0}, /*keepdims=*/true)});
  Value* rc = b.scalar(r, dt);
  return b.mul(w, b.div(rc, b.op(OpKind::Maximum, {norms, rc})));
}

Value* stateParam(Builder& b, const std::string& name, DType dt, double init) {
  return b.parameter(name, {}, {{"trainable", false}, {"dtype", dt}, {"init", std::string("constant")},
                                {"init_value", init}});
}

}  // namespace

Expected<TrainingGraphInfo> buildTrainingGraph(Graph& g, const frontend::TrainingSpec& spec,
                                               const TrainingGraphOptions& options) {
  const GraphOutput* lossOut = findOutput(g, "loss");
  if (!lossOut)
    return Error::msg("the graph has no output named 'loss' to train (a model file with a training "
                      "block gives one)");
  setTrainingMode(g, true);
  KILN_RETURN_IF_ERROR(verifyGraph(g));
  Value* dataLoss = lossOut->value;
  const DType dt = dataLoss->type().dtype;

  Builder b(g);
  Value* loss = addRegularization(b, g, dataLoss);

  TrainingGraphInfo info;
  std::vector<Node*> trainable;
  for (Node* p : g.parameters())
    if (p->b("trainable")) trainable.push_back(p);
  if (trainable.empty()) return Error::msg("no trainable parameters: every parameter is frozen");
  std::vector<Value*> wrt;
  for (Node* p : trainable) wrt.push_back(p->result());
  if (!b.ok()) return b.takeStatus().takeError();
  KILN_ASSIGN_OR_RETURN(GradientResult grads, differentiate(g, loss, wrt));
  info.gradientNodes = static_cast<int64_t>(grads.added.size());

  if (options.clipGradients) training::insertGradientClipping(b, spec.clipping, grads.grads);

  // Step state: completed steps (float64: exact far past any run's length) and the schedule.
  b.setPrefix("train/");
  Value* step = stateParam(b, kStepCounter, DType::Float64, 0);
  Value* completed = b.op(OpKind::Cast, {step}, {{"dtype", dt}}, "completed");
  Value* t = b.add(completed, b.scalar(1, dt));  // Adam's t: this update's number, from 1
  Value* plateauRate = nullptr;
  if (spec.schedule.kind == frontend::ScheduleKind::Performance)
    plateauRate = stateParam(b, kLearningRateState, dt, spec.optimizer.learningRate);
  b.setPrefix("schedule/");
  training::ScheduleValues sched = training::buildSchedule(b, spec, completed, options.totalSteps, plateauRate);
  training::StepValues sv{sched.learningRate, sched.momentum, t};
  Value* newMuProduct = nullptr;
  if (spec.optimizer.kind == frontend::OptimizerKind::Nadam) {
    // mu_t = beta1*(1 - 0.5*0.96^(t*psi)); P_t = P_{t-1} * mu_t.
    auto muAt = [&](Value* tt) {
      Value* e = b.mul(tt, b.scalar(spec.optimizer.momentumDecay, dt));
      return b.mul(b.scalar(spec.optimizer.beta1, dt),
                   b.sub(b.scalar(1, dt), b.mul(b.scalar(0.5, dt), b.op(OpKind::Pow, {b.scalar(0.96, dt), e}))));
    };
    Value* product = stateParam(b, kMuProduct, dt, 1.0);
    sv.mu = muAt(t);
    sv.muNext = muAt(b.add(t, b.scalar(1, dt)));
    sv.muProduct = newMuProduct = b.mul(product, sv.mu);
  }

  std::vector<std::pair<std::string, Value*>> stateOut;
  for (size_t i = 0; i < trainable.size(); ++i) {
    Node* p = trainable[i];
    if (!grads.grads[i]) continue;  // Does not reach the loss: nothing to update.
    b.setPrefix("update/" + p->name() + "/");
    training::ParamUpdate u = training::buildOptimizerUpdate(b, spec.optimizer, sv, p, grads.grads[i]);
    Value* v = u.newValue;
    if (double r = p->f("max_norm"); r > 0 && v) v = applyMaxNorm(b, v, r);
    stateOut.push_back({p->name(), v});
    for (auto& [slot, value] : u.slots) stateOut.push_back({slot ? slot->name() : "", value});
    info.trainable.push_back(p->name());
    info.gradients.push_back(grads.grads[i]);
  }
  // Batch-norm moving averages: the training-form node's results 1 and 2 are the new values of
  // its moving_mean and moving_variance operands (no user wiring: no UPDATE_OPS trap).
  for (Node* n : g.nodes())
    if (n->op() == OpKind::BatchNorm)
      for (int k = 1; k <= 2; ++k) {
        Node* stat = n->operand(2 + k)->node();
        if (stat->op() == OpKind::Parameter && !stat->b("trainable"))
          stateOut.push_back({stat->name(), n->result(k)});
      }
  b.setPrefix("train/");
  stateOut.push_back({kStepCounter, b.add(step, b.scalar(1, DType::Float64))});
  if (newMuProduct) stateOut.push_back({kMuProduct, newMuProduct});
  if (plateauRate) stateOut.push_back({kLearningRateState, plateauRate});
  if (!b.ok()) return b.takeStatus().takeError();

  // Outputs: the loss with its regularization, the metrics, the rate, then the new state.
  std::vector<GraphOutput> old = g.outputs();
  g.clearOutputs();
  g.addOutput("loss", loss);
  for (const GraphOutput& o : old)
    if (o.name != "loss" && o.name != "logits") g.addOutput(o.name, o.value);
  g.addOutput("learning_rate", sched.learningRate);
  for (auto& [name, v] : stateOut) {
    if (name.empty() || !v) return Error::msg("internal: incomplete state update");
    g.addOutput(name, v);
    info.state.push_back(name);
  }
  KILN_RETURN_IF_ERROR(verifyGraph(g));
  return info;
}

}  // namespace kiln
