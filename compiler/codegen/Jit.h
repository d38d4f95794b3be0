// In-process compilation of a graph with ORC LLJIT: lower, optimize for the host CPU, link
// against the runtime kernels, and call the entry points (raw ABI or on Tensors).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "compiler/codegen/Lowering.h"
#include "compiler/codegen/MemoryPlan.h"
#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"
#include "runtime/KilnABI.h"

namespace llvm::orc {
class LLJIT;
}

namespace kiln::codegen {

struct JitOptions {
  /// LLVM optimization level, 0..3 (O2 and O3 turn the vectorizers on).
  int optLevel = 3;
  /// Keep the optimized module's text (JitGraph::optimizedIR), for tests and debugging.
  bool keepIR = false;
  /// Fusion decisions (kiln bench turns fusion off to measure it).
  ScheduleOptions schedule;
  /// The entry point's suffix (runtime/KilnABI.h): KILN_ENTRY_PREDICT, _TRAIN_STEP, _EVALUATE.
  std::string entry = KILN_ENTRY_PREDICT;
  /// A training step: outputs named after parameters are written into them (lowerGraph).
  bool updatesState = false;
};

class JitGraph {
 public:
  /// Compiles `g` (verified), which must outlive the result.
  static Expected<std::unique_ptr<JitGraph>> compile(const Graph& g, const JitOptions& opts = {});
  ~JitGraph();

  /// The raw entry point (runtime/KilnABI.h). Inputs, outputs and parameters in the graph's
  /// order; seed and step key the random numbers (ignored by graphs without random ops).
  int32_t call(int64_t batch, const void* const* inputs, void* const* outputs, void* const* params,
               void* arena, uint64_t seed = 0, int64_t step = 0) const {
    return entry_(batch, inputs, outputs, params, arena, seed, step);
  }
  int64_t arenaSize(int64_t batch) const { return arenaSize_(batch); }
  /// The raw function pointers and run-check messages, for a CompiledExecutor to run.
  kiln_entry_fn entryFunction() const { return entry_; }
  kiln_arena_size_fn arenaSizeFunction() const { return arenaSize_; }
  const std::vector<std::string>& checkMessages() const { return checkMessages_; }
  const MemoryPlan& memoryPlan() const { return plan_; }
  /// The outputs array's graph outputs (indices into g.outputs()), in order.
  const std::vector<size_t>& returnedOutputs() const { return returned_; }
  /// The outputs written into parameters (with JitOptions::updatesState).
  const std::vector<LoweredGraph::StateUpdate>& stateUpdates() const { return updates_; }
  /// Loops the entry point stores (fused elementwise groups count once).
  int storedNodes() const { return storedNodes_; }
  /// Nodes whose results another node's merged loop stores (Schedule::mergedLoops).
  int mergedNodes() const { return mergedNodes_; }
  const std::string& optimizedIR() const { return ir_; }
  /// Seconds spent lowering, optimizing and generating machine code.
  double compileSeconds() const { return compileSeconds_; }
  /// The text of a nonzero status returned by call().
  std::string statusMessage(int32_t status) const;

  /// Runs on tensors, checked like Interpreter::run (the batch binds to the inputs); parameters
  /// by name, each matching the graph's type. Allocates the outputs and the arena. Returns every
  /// output, as the interpreter does: a graph that updates state writes into copies of `params`
  /// and returns the new values under the parameters' names.
  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                               const std::map<std::string, Tensor>& params,
                                               uint64_t seed = 0, int64_t step = 0) const;
  /// Checks `inputs` against the graph's inputs (names, dtypes, shapes) and returns the batch
  /// they bind and their data pointers in the graph's input order.
  Expected<std::pair<int64_t, std::vector<const void*>>> bindInputs(
      const std::map<std::string, Tensor>& inputs) const;

 private:
  explicit JitGraph(const Graph& g);
  const Graph& g_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  kiln_entry_fn entry_ = nullptr;
  kiln_arena_size_fn arenaSize_ = nullptr;
  MemoryPlan plan_;
  std::vector<size_t> returned_;
  std::vector<LoweredGraph::StateUpdate> updates_;
  std::vector<std::string> checkMessages_;
  std::string ir_;
  int storedNodes_ = 0;
  int mergedNodes_ = 0;
  double compileSeconds_ = 0;
};

}  // namespace kiln::codegen
