// A kiln::StepExecutor over a compiled entry point (runtime/KilnABI.h), whoever compiled it: the
// JIT (JitExecutor owns the JitGraph and hands its function here) or `kiln build`, whose program
// links the AOT object and needs no LLVM. The state (parameters, optimizer slots, moving
// statistics, step counter) lives in buffers this executor owns; a compiled training step updates
// them in place.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "compiler/training/StepExecutor.h"
#include "runtime/KilnABI.h"

namespace kiln {

/// What the executor needs to know of a compiled function besides its graph.
struct CompiledFunction {
  kiln_entry_fn entry = nullptr;
  kiln_arena_size_fn arenaSize = nullptr;
  /// The message of a nonzero status s is checkMessages[s - 1].
  std::vector<std::string> checkMessages;
  /// The graph outputs (indices into g.outputs()) the outputs array receives, in order; a
  /// training step's state updates are written into the state instead.
  std::vector<size_t> returnedOutputs;
  /// A training step that writes some outputs into its state (a failed run check can then leave
  /// the state partly updated).
  bool updatesState = false;
};

/// Checks `inputs` against g's inputs (names, dtypes, shapes) and returns the batch they bind and
/// their data pointers in the graph's input order.
Expected<std::pair<int64_t, std::vector<const void*>>> bindGraphInputs(
    const Graph& g, const std::map<std::string, Tensor>& inputs);

class CompiledExecutor : public StepExecutor {
 public:
  /// `g` (verified; it must outlive the executor) defines the state layout: params[i] of each
  /// call is g.parameters()[i]. `seed` keys dropout and rrelu noise with each run's step, as
  /// InterpreterExecutor's does. `kind` is the one word progress output shows ("jit",
  /// "compiled"). The state starts zeroed: call initialize or setState.
  static Expected<std::unique_ptr<CompiledExecutor>> create(const Graph& g, CompiledFunction fn,
                                                            uint64_t seed, std::string kind);

  /// Returns the returned outputs by name (a training step's new state is read through state()).
  /// If a run check fails (a label outside the classes, ...), the error says so and a training
  /// step's state may be partly updated: restore it before running again.
  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                              int64_t step) override;
  std::map<std::string, Tensor> state() const override;
  std::vector<std::string> stateNames() const override;
  Status setState(const std::string& name, const Tensor& value) override;
  /// The interpreter's initializers (Interpreter::initializeParameters), so every executor starts
  /// from the same state for a seed.
  Status initialize(uint64_t seed) override;
  std::string kind() const override { return kind_; }

 private:
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<void, FreeDeleter>;
  CompiledExecutor(const Graph& g, CompiledFunction fn, uint64_t seed, std::string kind)
      : g_(g), fn_(std::move(fn)), seed_(seed), kind_(std::move(kind)) {}
  static Buffer allocate(size_t bytes);

  const Graph& g_;
  CompiledFunction fn_;
  uint64_t seed_;
  std::string kind_;
  std::vector<Buffer> state_;  // one KILN_ARENA_ALIGNMENT-aligned buffer per parameter
  std::vector<size_t> stateBytes_;
  std::vector<void*> statePtrs_;
  Buffer arena_;
  int64_t arenaBytes_ = -1;
};

}  // namespace kiln
