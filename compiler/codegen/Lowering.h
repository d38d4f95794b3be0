// Lowering of a verified graph to an LLVM module with the C entry points of runtime/KilnABI.h:
// NAME_ENTRY (NAME_predict, NAME_train_step, ...) and NAME_ENTRY_arena_size.
#pragma once

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <memory>
#include <string>
#include <vector>

#include "compiler/codegen/MemoryPlan.h"
#include "ir/Graph.h"
#include "runtime/KilnABI.h"

namespace kiln::codegen {

/// A graph lowered to LLVM IR, with what a caller needs to call it.
struct LoweredGraph {
  std::unique_ptr<llvm::Module> module;
  /// The symbol prefix: NAME in NAME_predict (the graph name made a C identifier).
  std::string name;
  /// NAME_ENTRY (the entry point) and NAME_ENTRY_arena_size.
  std::string entrySymbol, arenaSizeSymbol;
  Schedule schedule;
  MemoryPlan plan;
  /// Message of each run-time check, by id - 1 (the entry point returns the id).
  std::vector<std::string> checkMessages;
  /// The graph outputs the outputs array holds, by index into g.outputs(), in array order: all
  /// of them, except the state updates of a graph lowered with updatesState.
  std::vector<size_t> returnedOutputs;
  /// An output that is the new value of a parameter, written into that parameter's buffer.
  struct StateUpdate {
    size_t output = 0;  // index into g.outputs()
    size_t param = 0;   // index into g.parameters() (and the params array)
    /// Computed into the arena and copied into the parameter at the end, because a loop after
    /// the one computing it still reads the old value (or it reads the old value at other
    /// elements); otherwise the computing loop writes the parameter directly.
    bool viaArena = false;
  };
  std::vector<StateUpdate> stateUpdates;
  /// How many loops the predict function stores (fused groups, merged loops, kernels): for reports.
  int storedNodes = 0;
  /// Nodes whose results are stored by another node's merged loop (Schedule::mergedLoops).
  int mergedNodes = 0;
};

/// Lowers `g` (verified) into a new module of `ctx`, with the entry point NAME_`entry`
/// (KILN_ENTRY_PREDICT, KILN_ENTRY_TRAIN_STEP, KILN_ENTRY_EVALUATE). `name` overrides the graph's
/// name as the symbol prefix; `schedule` sets the fusion decisions. With `updatesState` (a
/// training step), every output named after a parameter is written into that parameter
/// (LoweredGraph::stateUpdates) rather than returned. Errors name the node the lowering cannot
/// handle.
Expected<LoweredGraph> lowerGraph(const Graph& g, llvm::LLVMContext& ctx, std::string name = "",
                                  const ScheduleOptions& schedule = {},
                                  std::string entry = KILN_ENTRY_PREDICT, bool updatesState = false);

/// `name` as a C identifier: other characters become '_', a leading digit gets a '_' prefix.
std::string cIdentifier(const std::string& name);

}  // namespace kiln::codegen
