// Internal pieces of the training-step graph, one file each: the in-graph learning-rate
// schedule, gradient clipping, and the optimizer updates.
#pragma once

#include <string>
#include <vector>

#include "frontend/TrainingSpec.h"
#include "ir/Builder.h"

namespace kiln::training {

/// The schedule's values for one step, as float scalars in the graph.
struct ScheduleValues {
  Value* learningRate = nullptr;
  /// The momentum to use (beta for momentum/nesterov, beta_1 for the adam family), or null
  /// when the optimizer's own constant applies.
  Value* momentum = nullptr;
};

/// The learning rate (and 1cycle's momentum) after `completed` steps (a float scalar; 0 for the
/// first update), as Keras's schedules define them and frontend/TrainingMath.h computes on the
/// host. `performanceRate` is the runtime-driven rate of the plateau schedule.
ScheduleValues buildSchedule(Builder& b, const frontend::TrainingSpec& spec, Value* completed,
                             int64_t totalSteps, Value* performanceRate);

/// Clips `grads` in place (by value, per-tensor norm or global norm); ClipMode::None adds no
/// node. Returns the number of nodes added.
int64_t insertGradientClipping(Builder& b, const frontend::ClippingSpec& clip, std::vector<Value*>& grads);

/// One parameter's update: its new value, and its slots' new values (slot parameters are
/// created as `<param>/<slot>`, non-trainable, zero-initialized).
struct ParamUpdate {
  Value* newValue = nullptr;
  std::vector<std::pair<Node*, Value*>> slots;  // slot parameter, its new value
};

/// Shared per-step values the optimizers use.
struct StepValues {
  Value* lr = nullptr;        // learning rate
  Value* momentum = nullptr;  // scheduled momentum / beta_1, or null
  Value* t = nullptr;         // Adam's t: this update's number, from 1
  Value* muProduct = nullptr;      // nadam: prod of mu_i up to this step
  Value* mu = nullptr;             // nadam: mu_t
  Value* muNext = nullptr;         // nadam: mu_{t+1}
};

ParamUpdate buildOptimizerUpdate(Builder& b, const frontend::OptimizerSpec& opt, const StepValues& s,
                                 Node* param, Value* grad);

}  // namespace kiln::training
