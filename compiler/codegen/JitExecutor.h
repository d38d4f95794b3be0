// The JIT as a kiln::StepExecutor: a training step (or evaluation batch) compiled to native code,
// with the state (parameters, optimizer slots, moving statistics, step counter) in buffers it
// owns, which a compiled training step updates in place.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "compiler/codegen/Jit.h"
#include "compiler/training/StepExecutor.h"

namespace kiln::codegen {

class JitExecutor : public StepExecutor {
 public:
  /// Compiles `g` (verified; it must outlive the executor) with the entry KILN_ENTRY_TRAIN_STEP
  /// when `updatesState` (outputs named after parameters become the state's new values) and
  /// KILN_ENTRY_EVALUATE otherwise. `seed` keys dropout and rrelu noise with each run's step,
  /// as InterpreterExecutor's does. The state starts zeroed: call initialize or setState.
  static Expected<std::unique_ptr<JitExecutor>> create(const Graph& g, bool updatesState, uint64_t seed,
                                                       JitOptions opts = {});

  /// Returns the graph's returned outputs by name (loss, metrics, learning_rate; for a graph
  /// that does not update state, every output). A training step's new state is read through
  /// state(). If a compiled run check fails (a label outside the classes, ...), the error says
  /// so and a training step's state is partly updated: restore it before running again.
  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                               int64_t step) override;
  std::map<std::string, Tensor> state() const override;
  std::vector<std::string> stateNames() const override;
  Status setState(const std::string& name, const Tensor& value) override;
  /// The interpreter's initializers (Interpreter::initializeParameters), so both executors start
  /// from the same state for a seed.
  Status initialize(uint64_t seed) override;
  std::string kind() const override { return "jit"; }

  const JitGraph& compiled() const { return *jit_; }

 private:
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<void, FreeDeleter>;
  JitExecutor(const Graph& g, bool updatesState, uint64_t seed) : g_(g), updatesState_(updatesState), seed_(seed) {}
  static Buffer allocate(size_t bytes);

  const Graph& g_;
  bool updatesState_;
  uint64_t seed_;
  std::unique_ptr<JitGraph> jit_;
  std::vector<Buffer> state_;   // one KILN_ARENA_ALIGNMENT-aligned buffer per parameter
  std::vector<size_t> stateBytes_;
  std::vector<void*> statePtrs_;
  Buffer arena_;
  int64_t arenaBytes_ = -1;
};

/// A JitExecutor behind the StepExecutor interface (see JitExecutor::create).
Expected<std::unique_ptr<StepExecutor>> makeJitExecutor(const Graph& g, bool updatesState, uint64_t seed);

}  // namespace kiln::codegen
