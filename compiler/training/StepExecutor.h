// What runs a graph for the training loop: a training step (which also updates the state it
// owns) or an evaluation batch. The reference interpreter implements it today; the LLVM JIT
// will implement the same interface, and the loop, checkpoints and commands will not change.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/interpreter/Interpreter.h"
#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"

namespace kiln {

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;

  /// Runs the graph on `inputs` (by input name) with the random numbers of (seed, `step`) and
  /// returns its outputs by name. An executor made for a training step then takes each output
  /// that names a piece of its state (a parameter, slot, moving statistic, the step counter) as
  /// that state's new value, so the next run sees it.
  virtual Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                                       int64_t step) = 0;

  /// Every piece of state (the graph's parameters) by name, as host tensors.
  virtual std::map<std::string, Tensor> state() const = 0;
  /// The names of the state, in name order.
  virtual std::vector<std::string> stateNames() const = 0;
  /// Replaces one piece of state; its dtype and shape must match the graph's.
  virtual Status setState(const std::string& name, const Tensor& value) = 0;
  /// Gives every piece of state its initializer's value, drawn from `seed`.
  virtual Status initialize(uint64_t seed) = 0;
  /// A one-word description for progress output ("interpreter", "jit").
  virtual std::string kind() const = 0;
};

/// The reference interpreter as an executor over `g` (which must be verified and outlive it).
/// `updatesState`: take same-named outputs as the state's new values after each run (a
/// training-step graph); false for evaluation graphs. `seed` keys dropout and rrelu noise.
class InterpreterExecutor : public StepExecutor {
 public:
  InterpreterExecutor(const Graph& g, bool updatesState, uint64_t seed)
      : interp_(g), graph_(g), updatesState_(updatesState), seed_(seed) {}

  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                               int64_t step) override {
    RunOptions opts;
    opts.seed = seed_;
    opts.step = step;
    auto out = interp_.run(inputs, opts);
    if (out && updatesState_) interp_.updateParameters(*out);
    return out;
  }
  std::map<std::string, Tensor> state() const override { return interp_.parameters(); }
  std::vector<std::string> stateNames() const override {
    std::vector<std::string> names;
    for (Node* p : graph_.parameters()) names.push_back(p->name());
    std::sort(names.begin(), names.end());
    return names;
  }
  Status setState(const std::string& name, const Tensor& value) override {
    return interp_.setParameter(name, value);
  }
  Status initialize(uint64_t seed) override { return interp_.initializeParameters(seed); }
  std::string kind() const override { return "interpreter"; }

 private:
  Interpreter interp_;
  const Graph& graph_;
  bool updatesState_;
  uint64_t seed_;
};

}  // namespace kiln
