// The scalar rules of a training spec, written once for clarity: the learning rate (and
// 1cycle's momentum) at each step, the plateau schedule's state, and gradient clipping. Training
// code evaluates schedules on the host with these; compiled clipping is tested against them.
#pragma once

#include <cstdint>
#include <vector>

#include "frontend/TrainingSpec.h"

namespace kiln::frontend {

/// The learning rate of the update made after `t` completed steps (t = 0 for the first update,
/// as Keras's LearningRateSchedule sees it), for every schedule but performance (whose rate
/// depends on the metric; see PlateauSchedule), which gives the initial rate. `totalSteps` is
/// one_cycle's T when the spec leaves total_steps unset (every step of the run).
///   constant: eta0;  power: eta0 / (1 + t/s)^c;  exponential: eta0 * rate^(t/s);
///   piecewise_constant: values[i], i = the number of boundaries below t (Keras: values[0]
///   while t <= boundaries[0]);
///   one_cycle: eta0 -> eta_max linearly over the first 45% of T, back to eta0 by 90%, then
///   down to eta0/1000 at T (and eta0/1000 after it).
double learningRateAt(const TrainingSpec& spec, int64_t t, int64_t totalSteps = 0);

/// The momentum (momentum/nesterov beta, adam family beta_1) for the update after `t` steps:
/// one_cycle goes max_momentum -> min_momentum over the first 45% of T and back by 90%, then
/// stays at max_momentum; otherwise the optimizer's own value.
double momentumAt(const TrainingSpec& spec, int64_t t, int64_t totalSteps = 0);

/// The performance (reduce on plateau) schedule: the rate drops by `factor` (not below
/// min_learning_rate) once the monitored value has not improved for `patience` epochs in a row
/// (improved: strictly lower, or higher for accuracy), and the count starts over.
class PlateauSchedule {
 public:
  explicit PlateauSchedule(const TrainingSpec& spec);
  double learningRate() const { return lr_; }
  /// Records the monitored value at the end of an epoch; returns the rate for the next one.
  double endEpoch(double monitored);

 private:
  ScheduleSpec s_;
  double lr_;
  bool higherIsBetter_;
  bool haveBest_ = false;
  double best_ = 0;
  int64_t wait_ = 0;
};

/// Clips gradients in place as chapter11.md says: value: each component into [-t, t]; norm:
/// each tensor g <- g * t / max(||g||, t); global_norm: every tensor by t / max(N, t) with N the
/// norm of all of them together. None leaves them alone.
void clipGradients(const ClippingSpec& clip, std::vector<std::vector<double>*> grads);

}  // namespace kiln::frontend
