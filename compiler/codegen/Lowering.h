// Lowering of a verified inference graph to an LLVM module with the C entry points of
// runtime/KilnABI.h: NAME_predict and NAME_arena_size.
#pragma once

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <memory>
#include <string>
#include <vector>

#include "compiler/codegen/MemoryPlan.h"
#include "ir/Graph.h"

namespace kiln::codegen {

/// A graph lowered to LLVM IR, with what a caller needs to call it.
struct LoweredGraph {
  std::unique_ptr<llvm::Module> module;
  /// The symbol prefix: NAME in NAME_predict (the graph name made a C identifier).
  std::string name;
  std::string predictSymbol, arenaSizeSymbol;
  Schedule schedule;
  MemoryPlan plan;
  /// Message of each run-time check, by id - 1 (the predict function returns the id).
  std::vector<std::string> checkMessages;
  /// How many loops the predict function stores (fused groups plus kernels): for reports.
  int storedNodes = 0;
};

/// Lowers `g` (verified; inference form) into a new module of `ctx`. `name` overrides the
/// graph's name as the symbol prefix. Errors name the node the lowering cannot handle.
Expected<LoweredGraph> lowerGraph(const Graph& g, llvm::LLVMContext& ctx, std::string name = "",
                                  const ScheduleOptions& schedule = {});

/// `name` as a C identifier: other characters become '_', a leading digit gets a '_' prefix.
std::string cIdentifier(const std::string& name);

}  // namespace kiln::codegen
