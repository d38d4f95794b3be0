// JitExecutor: compiles the graph and hands its entry point to a CompiledExecutor.
#include "compiler/codegen/JitExecutor.h"

namespace kiln::codegen {

Expected<std::unique_ptr<JitExecutor>> JitExecutor::create(const Graph& g, bool updatesState,
                                                           uint64_t seed, JitOptions opts) {
  opts.updatesState = updatesState;
  opts.entry = updatesState ? KILN_ENTRY_TRAIN_STEP : KILN_ENTRY_EVALUATE;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<JitGraph> jit, JitGraph::compile(g, opts));
  CompiledFunction fn;
  fn.entry = jit->entryFunction();
  fn.arenaSize = jit->arenaSizeFunction();
  fn.checkMessages = jit->checkMessages();
  fn.returnedOutputs = jit->returnedOutputs();
  fn.updatesState = updatesState && !jit->stateUpdates().empty();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledExecutor> exec,
                        CompiledExecutor::create(g, std::move(fn), seed, "jit"));
  return std::unique_ptr<JitExecutor>(new JitExecutor(std::move(jit), std::move(exec)));
}

Expected<std::unique_ptr<StepExecutor>> makeJitExecutor(const Graph& g, bool updatesState,
                                                        uint64_t seed) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<JitExecutor> x, JitExecutor::create(g, updatesState, seed));
  return std::unique_ptr<StepExecutor>(std::move(x));
}

}  // namespace kiln::codegen
