// Validation of a model's training spec, with chapter11.md's defaults.
#include "frontend/TrainingSpec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

#include "frontend/Names.h"

namespace kiln::frontend {

std::string_view lossName(LossKind k) { return kLosses[static_cast<size_t>(k)]; }
std::string_view metricName(MetricKind k) { return kMetrics[static_cast<size_t>(k)]; }
std::string_view optimizerName(OptimizerKind k) { return kOptimizers[static_cast<size_t>(k)]; }
std::string_view scheduleName(ScheduleKind k) { return kSchedules[static_cast<size_t>(k)]; }
std::string_view clipModeName(ClipMode m) { return kClippingModes[static_cast<size_t>(m)]; }
std::string_view targetsName(Targets t) { return kTargets[static_cast<size_t>(t)]; }

bool OptimizerSpec::hasMomentum() const {
  return kind != OptimizerKind::Sgd && kind != OptimizerKind::Adagrad &&
         kind != OptimizerKind::RMSProp;
}

namespace {

// Shortest text that reads back as the same double: 0.01, 1e-07, 1.2.
std::string num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

template <size_t N>
std::optional<size_t> indexOf(std::string_view name, const std::string_view (&names)[N]) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == name) return i;
  return std::nullopt;
}

// Collects the diagnostics of one section of the spec (e.g. "training.optimizer").
class Section {
 public:
  Section(const ModelSource& src, std::vector<Diagnostic>& diags, std::vector<FieldStep> base)
      : src_(src), diags_(diags), base_(std::move(base)) {
    for (const FieldStep& s : base_) title_ += (title_.empty() ? "" : ".") + std::string(s.field);
  }

  void fail(std::string_view field, const std::string& message, int index = -1) {
    std::vector<FieldStep> path = base_;
    if (!field.empty()) path.push_back({field, index});
    diags_.push_back(Diagnostic{src_.at(path), {}, {}, title_ + ": " + message});
  }
  // A name from `names` (or an error); empty `name` gives `fallback`.
  template <size_t N>
  std::optional<size_t> pick(std::string_view field, std::string_view what, const std::string& name,
                             const std::string_view (&names)[N], std::optional<size_t> fallback) {
    if (name.empty()) {
      if (!fallback) fail(field, std::string(field) + " is required (one of " + oneOf(names) + ")");
      return fallback;
    }
    std::optional<size_t> i = indexOf(name, names);
    if (!i) fail(field, checkName(what, name, names));
    return i;
  }
  // Range checks; each reports `field must be ..., found v` and leaves `out` alone on failure.
  // Written as !(in range) so that NaN fails them too.
  void finite(std::string_view field, double v, double& out, bool ok, const std::string& rule) {
    if (!std::isfinite(v) || !ok)
      fail(field, std::string(field) + " must be " + rule + ", found " + num(v));
    else
      out = v;
  }
  void positive(std::string_view field, double v, double& out) {
    finite(field, v, out, v > 0, "positive");
  }
  void nonNegative(std::string_view field, double v, double& out) {
    finite(field, v, out, v >= 0, "at least 0");
  }
  void unitOpen(std::string_view field, double v, double& out) {
    finite(field, v, out, v >= 0 && v < 1, "in [0, 1)");
  }
  void atLeast(std::string_view field, int64_t v, int64_t lo, int64_t& out) {
    if (v < lo)
      fail(field, std::string(field) + " must be at least " + std::to_string(lo) + ", found " +
                      std::to_string(v));
    else
      out = v;
  }

 private:
  const ModelSource& src_;
  std::vector<Diagnostic>& diags_;
  std::vector<FieldStep> base_;
  std::string title_;
};

using OK = OptimizerKind;

void validateOptimizer(const proto::Optimizer& p, Section& s, OptimizerSpec& o) {
  std::optional<size_t> kind =
      s.pick("kind", "optimizer", p.kind(), kOptimizers, static_cast<size_t>(OK::RMSProp));
  if (!kind) return;
  o.kind = static_cast<OK>(*kind);
  const std::string name(optimizerName(o.kind));
  bool sgdFamily = o.kind == OK::Sgd || o.kind == OK::Momentum || o.kind == OK::Nesterov ||
                   o.kind == OK::Adagrad;
  bool adamFamily =
      o.kind == OK::Adam || o.kind == OK::Adamax || o.kind == OK::Nadam || o.kind == OK::AdamW;
  o.learningRate = sgdFamily ? 0.01 : 0.001;
  o.epsilon = o.kind == OK::RMSProp || o.kind == OK::Adagrad ? 1e-10 : 1e-7;
  // Each hyperparameter, with the optimizers that take it.
  // `takers` says who does take it: "rmsprop takes it", "adam, ... and adamw take it".
  auto notFor = [&](std::string_view field, const char* takers) {
    std::string hint = o.kind == OK::Sgd && field == "momentum"
                           ? "; for momentum optimization use kind: \"momentum\" (or \"nesterov\")"
                           : " (" + std::string(takers) + ")";
    s.fail(field, name + " takes no " + std::string(field) + hint);
  };
  if (p.has_learning_rate()) s.positive("learning_rate", p.learning_rate(), o.learningRate);
  if (p.has_momentum()) {
    if (o.kind == OK::Momentum || o.kind == OK::Nesterov)
      s.unitOpen("momentum", p.momentum(), o.momentum);
    else
      notFor("momentum", "momentum and nesterov take it");
  }
  const char* adams = "adam, adamax, nadam and adamw take it";
  if (p.has_beta_1())
    adamFamily ? s.unitOpen("beta_1", p.beta_1(), o.beta1) : notFor("beta_1", adams);
  if (p.has_beta_2())
    adamFamily ? s.unitOpen("beta_2", p.beta_2(), o.beta2) : notFor("beta_2", adams);
  if (p.has_epsilon()) {
    if (o.kind == OK::Sgd || o.kind == OK::Momentum || o.kind == OK::Nesterov)
      notFor("epsilon", "adagrad, rmsprop and the adam family take it");
    else
      s.positive("epsilon", p.epsilon(), o.epsilon);
  }
  if (p.has_rho())
    o.kind == OK::RMSProp ? s.unitOpen("rho", p.rho(), o.rho) : notFor("rho", "rmsprop takes it");
  if (p.has_weight_decay())
    o.kind == OK::AdamW ? s.nonNegative("weight_decay", p.weight_decay(), o.weightDecay)
                        : notFor("weight_decay", "adamw takes it");
  if (p.has_momentum_decay())
    o.kind == OK::Nadam ? s.nonNegative("momentum_decay", p.momentum_decay(), o.momentumDecay)
                        : notFor("momentum_decay", "nadam takes it");
}

using SK = ScheduleKind;

// `spec.optimizer` is already validated; `lrGiven` says whether the model set learning_rate.
void validateSchedule(const proto::Schedule& p, Section& s, TrainingSpec& spec,
                      Section& optimizerSection, bool lrGiven) {
  ScheduleSpec& sc = spec.schedule;
  std::optional<size_t> kind =
      s.pick("kind", "schedule", p.kind(), kSchedules, static_cast<size_t>(SK::Constant));
  if (!kind) return;
  sc.kind = static_cast<SK>(*kind);
  const std::string name(scheduleName(sc.kind));
  auto only = [&](bool given, std::string_view field, SK owner) {
    if (given && sc.kind != owner)
      s.fail(field, name + " takes no " + std::string(field) + " (" +
                        std::string(scheduleName(owner)) + " does)");
    return given && sc.kind == owner;
  };
  bool decayGiven = p.has_decay_steps();
  if (decayGiven && sc.kind != SK::Power && sc.kind != SK::Exponential)
    s.fail("decay_steps", name + " takes no decay_steps (power and exponential do)");
  if (sc.kind == SK::Power || sc.kind == SK::Exponential) {
    if (!decayGiven)
      s.fail("", name + " needs decay_steps (the s in its formula)");
    else
      s.atLeast("decay_steps", p.decay_steps(), 1, sc.decaySteps);
  }
  if (only(p.has_power(), "power", SK::Power)) s.positive("power", p.power(), sc.power);
  if (only(p.has_decay_rate(), "decay_rate", SK::Exponential)) {
    double r = p.decay_rate();
    s.finite("decay_rate", r, sc.decayRate, r > 0 && r <= 1, "in (0, 1]");
  }

  bool bGiven = p.boundaries_size() > 0, vGiven = p.values_size() > 0;
  only(bGiven, "boundaries", SK::PiecewiseConstant);
  only(vGiven, "values", SK::PiecewiseConstant);
  if (sc.kind == SK::PiecewiseConstant) {
    if (!bGiven || p.values_size() != p.boundaries_size() + 1) {
      s.fail(vGiven ? "values" : "",
             "piecewise_constant needs boundaries [t1, t2, ...] and one more "
             "value than boundaries, found " +
                 std::to_string(p.boundaries_size()) + " boundaries and " +
                 std::to_string(p.values_size()) + " values");
    } else {
      int64_t prev = 0;
      for (int i = 0; i < p.boundaries_size(); ++i) {
        if (p.boundaries(i) <= prev) {
          s.fail("boundaries",
                 "boundaries must be positive and increasing, found " +
                     std::to_string(p.boundaries(i)) + " after " + std::to_string(prev),
                 i);
          break;
        }
        prev = p.boundaries(i);
      }
      for (int i = 0; i < p.values_size(); ++i) {
        double v = p.values(i), unused;
        s.finite("values", v, unused, v > 0, "positive learning rates");
      }
      sc.boundaries.assign(p.boundaries().begin(), p.boundaries().end());
      sc.values.assign(p.values().begin(), p.values().end());
      if (lrGiven && spec.optimizer.learningRate != sc.values[0])
        optimizerSection.fail(
            "learning_rate",
            "learning_rate " + num(spec.optimizer.learningRate) +
                " disagrees with the piecewise_constant schedule, which starts at " +
                num(sc.values[0]) + " (leave one out)");
      spec.optimizer.learningRate = sc.values[0];
    }
  }

  if (only(p.has_factor(), "factor", SK::Performance)) {
    double f = p.factor();
    s.finite("factor", f, sc.factor, f > 0 && f < 1, "in (0, 1)");
  }
  if (only(p.has_patience(), "patience", SK::Performance))
    s.atLeast("patience", p.patience(), 0, sc.patience);
  if (only(!p.monitor().empty(), "monitor", SK::Performance)) {
    std::vector<std::string> watchable = {"loss", "val_loss"};
    for (MetricKind m : spec.metrics) {
      watchable.push_back(std::string(metricName(m)));
      watchable.push_back("val_" + std::string(metricName(m)));
    }
    if (std::find(watchable.begin(), watchable.end(), p.monitor()) == watchable.end()) {
      std::vector<std::string_view> names(watchable.begin(), watchable.end());
      s.fail("monitor", "monitor '" + p.monitor() + "' is not a loss or a metric of this model" +
                            didYouMean(p.monitor(), names) + " (one of " + oneOf(names) + ")");
    } else {
      sc.monitor = p.monitor();
    }
  }
  if (only(p.has_min_learning_rate(), "min_learning_rate", SK::Performance)) {
    double v = p.min_learning_rate();
    s.finite("min_learning_rate", v, sc.minLearningRate, v >= 0 && v < spec.optimizer.learningRate,
             "at least 0 and below the learning rate " + num(spec.optimizer.learningRate));
  }

  if (only(p.has_max_learning_rate(), "max_learning_rate", SK::OneCycle)) {
    double v = p.max_learning_rate();
    s.finite("max_learning_rate", v, sc.maxLearningRate, v > spec.optimizer.learningRate,
             "above the initial learning rate " + num(spec.optimizer.learningRate));
  } else if (sc.kind == SK::OneCycle) {
    s.fail("", "one_cycle needs max_learning_rate (the peak rate, reached at 45% of the steps)");
  }
  if (only(p.has_total_steps(), "total_steps", SK::OneCycle))
    s.atLeast("total_steps", p.total_steps(), 1, sc.totalSteps);
  bool maxM = only(p.has_max_momentum(), "max_momentum", SK::OneCycle);
  bool minM = only(p.has_min_momentum(), "min_momentum", SK::OneCycle);
  if ((maxM || minM) && !spec.optimizer.hasMomentum())
    s.fail(maxM ? "max_momentum" : "min_momentum", std::string(optimizerName(spec.optimizer.kind)) +
                                                       " has no momentum for one_cycle to cycle");
  if (maxM) s.unitOpen("max_momentum", p.max_momentum(), sc.maxMomentum);
  if (minM) s.unitOpen("min_momentum", p.min_momentum(), sc.minMomentum);
  if (sc.minMomentum > sc.maxMomentum)
    s.fail("min_momentum",
           "min_momentum " + num(sc.minMomentum) + " exceeds max_momentum " + num(sc.maxMomentum));
}

}  // namespace

Expected<TrainingSpec> validateTraining(const ParsedModel& m) {
  assert(m.model.has_training());
  const proto::Training& t = m.model.training();
  const ModelSource& src = m.source;
  std::vector<Diagnostic> diags;
  TrainingSpec spec;
  Section top(src, diags, {{"training"}});

  std::optional<size_t> loss = top.pick("loss", "loss", t.loss(), kLosses, std::nullopt);
  if (loss) spec.loss = static_cast<LossKind>(*loss);
  std::optional<size_t> targets =
      top.pick("targets", "targets", t.targets(), kTargets, static_cast<size_t>(Targets::Labels));
  if (targets) spec.targets = static_cast<Targets>(*targets);
  if (loss && targets && spec.targets == Targets::Inputs &&
      spec.loss == LossKind::SparseSoftmaxCrossEntropy)
    top.fail("targets",
             "targets \"inputs\" (an autoencoder) needs mean_squared_error or "
             "binary_cross_entropy_with_logits, not sparse_softmax_cross_entropy");
  for (int i = 0; i < t.metric_size(); ++i) {
    std::optional<size_t> k = indexOf(t.metric(i), kMetrics);
    if (!k) {
      top.fail("metric", checkName("metric", t.metric(i), kMetrics), i);
      continue;
    }
    MetricKind mk = static_cast<MetricKind>(*k);
    if (std::find(spec.metrics.begin(), spec.metrics.end(), mk) != spec.metrics.end()) {
      top.fail("metric", "metric '" + t.metric(i) + "' is listed twice", i);
      continue;
    }
    if (mk == MetricKind::Accuracy && loss && spec.loss == LossKind::MeanSquaredError) {
      top.fail("metric",
               "accuracy needs a classification loss (sparse_softmax_cross_entropy or "
               "binary_cross_entropy_with_logits), not mean_squared_error",
               i);
      continue;
    }
    spec.metrics.push_back(mk);
  }
  if (t.has_epochs()) top.atLeast("epochs", t.epochs(), 1, spec.epochs);
  if (t.has_batch_size()) top.atLeast("batch_size", t.batch_size(), 1, spec.batchSize);
  if (t.has_seed()) spec.seed = t.seed();

  Section opt(src, diags, {{"training"}, {"optimizer"}});
  validateOptimizer(t.optimizer(), opt, spec.optimizer);
  Section sched(src, diags, {{"training"}, {"schedule"}});
  validateSchedule(t.schedule(), sched, spec, opt, t.optimizer().has_learning_rate());
  if (spec.schedule.kind == ScheduleKind::OneCycle && spec.optimizer.hasMomentum()) {
    // 1cycle drives the momentum; a fixed value next to it would be silently overridden.
    const char* field = t.optimizer().has_momentum() ? "momentum"
                        : t.optimizer().has_beta_1() ? "beta_1"
                                                     : nullptr;
    if (field)
      opt.fail(field, std::string(field) + " is driven by the one_cycle schedule (max_momentum " +
                          num(spec.schedule.maxMomentum) + " -> min_momentum " +
                          num(spec.schedule.minMomentum) + " -> max_momentum); set those instead");
  }

  Section clip(src, diags, {{"training"}, {"clipping"}});
  const proto::Clipping& c = t.clipping();
  if (std::optional<size_t> mode = clip.pick("mode", "clipping mode", c.mode(), kClippingModes,
                                             static_cast<size_t>(ClipMode::None))) {
    spec.clipping.mode = static_cast<ClipMode>(*mode);
    if (spec.clipping.mode == ClipMode::None && c.has_threshold())
      clip.fail("threshold", "a threshold without a clipping mode (value, norm or global_norm)");
    else if (spec.clipping.mode != ClipMode::None && !c.has_threshold())
      clip.fail("mode", "clipping by " + c.mode() + " needs a threshold");
    else if (c.has_threshold())
      clip.positive("threshold", c.threshold(), spec.clipping.threshold);
  }
  if (!diags.empty()) {
    std::stable_sort(diags.begin(), diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::pair(a.loc.line, a.loc.column) < std::pair(b.loc.line, b.loc.column);
    });
    return Error(std::move(diags));
  }
  return spec;
}

std::string TrainingSpec::describe() const {
  const OptimizerSpec& o = optimizer;
  std::string out =
      "Training: loss " + std::string(lossName(loss)) + " on " + std::string(targetsName(targets));
  if (!metrics.empty()) {
    out += "; metrics";
    for (MetricKind m : metrics) out += " " + std::string(metricName(m));
  }
  out += "\n  optimizer " + std::string(optimizerName(o.kind)) + ": learning_rate " +
         num(o.learningRate);
  switch (o.kind) {
    case OK::Sgd: break;
    case OK::Momentum:
    case OK::Nesterov: out += ", momentum " + num(o.momentum); break;
    case OK::Adagrad: out += ", epsilon " + num(o.epsilon); break;
    case OK::RMSProp: out += ", rho " + num(o.rho) + ", epsilon " + num(o.epsilon); break;
    case OK::Adam:
    case OK::Adamax:
    case OK::Nadam:
    case OK::AdamW:
      out +=
          ", beta_1 " + num(o.beta1) + ", beta_2 " + num(o.beta2) + ", epsilon " + num(o.epsilon);
      if (o.kind == OK::Nadam) out += ", momentum_decay " + num(o.momentumDecay);
      if (o.kind == OK::AdamW) out += ", weight_decay " + num(o.weightDecay);
      break;
  }
  const ScheduleSpec& s = schedule;
  out += "\n  schedule " + std::string(scheduleName(s.kind));
  switch (s.kind) {
    case SK::Constant: break;
    case SK::Power:
      out += ": decay_steps " + std::to_string(s.decaySteps) + ", power " + num(s.power);
      break;
    case SK::Exponential:
      out += ": decay_steps " + std::to_string(s.decaySteps) + ", decay_rate " + num(s.decayRate);
      break;
    case SK::PiecewiseConstant: {
      out += ": values " + num(s.values[0]);
      for (size_t i = 0; i < s.boundaries.size(); ++i)
        out += " until step " + std::to_string(s.boundaries[i]) + ", then " + num(s.values[i + 1]);
      break;
    }
    case SK::Performance:
      out += ": monitor " + s.monitor + ", factor " + num(s.factor) + ", patience " +
             std::to_string(s.patience) + ", min_learning_rate " + num(s.minLearningRate);
      break;
    case SK::OneCycle:
      out += ": max_learning_rate " + num(s.maxLearningRate) + ", total_steps " +
             (s.totalSteps ? std::to_string(s.totalSteps) : "all");
      if (o.hasMomentum()) out += ", momentum " + num(s.maxMomentum) + " -> " + num(s.minMomentum);
      break;
  }
  out += "\n  clipping " + std::string(clipModeName(clipping.mode));
  if (clipping.mode != ClipMode::None) out += ": threshold " + num(clipping.threshold);
  out += "\n  epochs " + std::to_string(epochs) + ", batch_size " + std::to_string(batchSize) +
         ", seed " + std::to_string(seed) + "\n";
  return out;
}

}  // namespace kiln::frontend
