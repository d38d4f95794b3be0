// The JIT as a kiln::StepExecutor: a training step (or evaluation batch) compiled to native code
// in-process, run by a CompiledExecutor (which owns the state buffers a compiled training step
// updates in place, as it does for the AOT functions of a program kiln build links).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "compiler/codegen/Jit.h"
#include "compiler/training/CompiledExecutor.h"

namespace kiln::codegen {

class JitExecutor : public StepExecutor {
 public:
  /// Compiles `g` (verified; it must outlive the executor) with the entry KILN_ENTRY_TRAIN_STEP
  /// when `updatesState` (outputs named after parameters become the state's new values) and
  /// KILN_ENTRY_EVALUATE otherwise. `seed` keys dropout and rrelu noise with each run's step,
  /// as InterpreterExecutor's does. The state starts zeroed: call initialize or setState.
  static Expected<std::unique_ptr<JitExecutor>> create(const Graph& g, bool updatesState,
                                                       uint64_t seed, JitOptions opts = {});

  /// Returns the graph's returned outputs by name (loss, metrics, learning_rate; for a graph
  /// that does not update state, every output). A training step's new state is read through
  /// state(). If a compiled run check fails (a label outside the classes, ...), the error says
  /// so and a training step's state is partly updated: restore it before running again.
  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                              int64_t step) override {
    return exec_->run(inputs, step);
  }
  std::map<std::string, Tensor> state() const override { return exec_->state(); }
  std::vector<std::string> stateNames() const override { return exec_->stateNames(); }
  Status setState(const std::string& name, const Tensor& value) override {
    return exec_->setState(name, value);
  }
  /// The interpreter's initializers (Interpreter::initializeParameters), so both executors start
  /// from the same state for a seed.
  Status initialize(uint64_t seed) override { return exec_->initialize(seed); }
  std::string kind() const override { return "jit"; }

  const JitGraph& compiled() const { return *jit_; }

 private:
  JitExecutor(std::unique_ptr<JitGraph> jit, std::unique_ptr<CompiledExecutor> exec)
      : jit_(std::move(jit)), exec_(std::move(exec)) {}

  std::unique_ptr<JitGraph> jit_;
  std::unique_ptr<CompiledExecutor> exec_;  // the state and the runs of jit_'s entry point
};

/// A JitExecutor behind the StepExecutor interface (see JitExecutor::create).
Expected<std::unique_ptr<StepExecutor>> makeJitExecutor(const Graph& g, bool updatesState,
                                                        uint64_t seed);

}  // namespace kiln::codegen
