// Learning-rate schedules, 1cycle momentum, plateau schedule and gradient clipping.
#include "frontend/TrainingMath.h"

#include <algorithm>
#include <cmath>

namespace kiln::frontend {
namespace {

// Linear from a (at fraction 0) to b (at fraction 1).
double lerp(double a, double b, double f) { return a + (b - a) * f; }

// one_cycle's phase boundaries, in steps.
struct Cycle {
  double p1, p2, total;
};
Cycle cycleOf(const ScheduleSpec& s, int64_t totalSteps) {
  double total =
      static_cast<double>(s.totalSteps ? s.totalSteps : std::max<int64_t>(totalSteps, 1));
  return {0.45 * total, 0.9 * total, total};
}

}  // namespace

double learningRateAt(const TrainingSpec& spec, int64_t step, int64_t totalSteps) {
  const ScheduleSpec& s = spec.schedule;
  const double eta0 = spec.optimizer.learningRate;
  const double t = static_cast<double>(std::max<int64_t>(step, 0));
  switch (s.kind) {
    case ScheduleKind::Constant:
    case ScheduleKind::Performance: return eta0;
    case ScheduleKind::Power:
      return eta0 / std::pow(1.0 + t / static_cast<double>(s.decaySteps), s.power);
    case ScheduleKind::Exponential:
      return eta0 * std::pow(s.decayRate, t / static_cast<double>(s.decaySteps));
    case ScheduleKind::PiecewiseConstant: {
      size_t i = 0;
      while (i < s.boundaries.size() && step > s.boundaries[i]) ++i;
      return s.values[i];
    }
    case ScheduleKind::OneCycle: {
      Cycle c = cycleOf(s, totalSteps);
      if (t <= c.p1) return lerp(eta0, s.maxLearningRate, t / c.p1);
      if (t <= c.p2) return lerp(s.maxLearningRate, eta0, (t - c.p1) / (c.p2 - c.p1));
      return lerp(eta0, eta0 / 1000, std::min(1.0, (t - c.p2) / (c.total - c.p2)));
    }
  }
  return eta0;
}

double momentumAt(const TrainingSpec& spec, int64_t step, int64_t totalSteps) {
  const OptimizerSpec& o = spec.optimizer;
  double fixed =
      o.kind == OptimizerKind::Momentum || o.kind == OptimizerKind::Nesterov ? o.momentum : o.beta1;
  const ScheduleSpec& s = spec.schedule;
  if (s.kind != ScheduleKind::OneCycle || !o.hasMomentum()) return fixed;
  Cycle c = cycleOf(s, totalSteps);
  const double t = static_cast<double>(std::max<int64_t>(step, 0));
  if (t <= c.p1) return lerp(s.maxMomentum, s.minMomentum, t / c.p1);
  if (t <= c.p2) return lerp(s.minMomentum, s.maxMomentum, (t - c.p1) / (c.p2 - c.p1));
  return s.maxMomentum;
}

PlateauSchedule::PlateauSchedule(const TrainingSpec& spec)
    : s_(spec.schedule),
      lr_(spec.optimizer.learningRate),
      higherIsBetter_(spec.schedule.monitor.find("accuracy") != std::string::npos) {}

double PlateauSchedule::endEpoch(double v) {
  bool improved = !haveBest_ || (higherIsBetter_ ? v > best_ : v < best_);
  if (improved) {
    haveBest_ = true;
    best_ = v;
    wait_ = 0;
  } else if (++wait_ >= s_.patience) {
    lr_ = std::max(lr_ * s_.factor, s_.minLearningRate);
    wait_ = 0;
  }
  return lr_;
}

void clipGradients(const ClippingSpec& clip, std::vector<std::vector<double>*> grads) {
  const double t = clip.threshold;
  auto norm2 = [](const std::vector<double>& g) {
    double s = 0;
    for (double x : g) s += x * x;
    return s;
  };
  switch (clip.mode) {
    case ClipMode::None: return;
    case ClipMode::Value:
      for (std::vector<double>* g : grads)
        for (double& x : *g) x = std::clamp(x, -t, t);
      return;
    case ClipMode::Norm:
      for (std::vector<double>* g : grads) {
        double scale = t / std::max(std::sqrt(norm2(*g)), t);
        for (double& x : *g) x *= scale;
      }
      return;
    case ClipMode::GlobalNorm: {
      double total = 0;
      for (std::vector<double>* g : grads) total += norm2(*g);
      double scale = t / std::max(std::sqrt(total), t);
      for (std::vector<double>* g : grads)
        for (double& x : *g) x *= scale;
      return;
    }
  }
}

}  // namespace kiln::frontend
