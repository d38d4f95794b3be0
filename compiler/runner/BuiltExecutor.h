// The executors of a program made by `kiln build`: its linked AOT functions run through
// CompiledExecutor over graphs rebuilt from the embedded model, after checking that the two agree.
#pragma once

#include <memory>
#include <string>

#include "compiler/runner/BuiltProgram.h"
#include "compiler/training/StepExecutor.h"

namespace kiln::runner {

/// f was compiled from the same model with the same flags as g was rebuilt, so its parameters
/// must be g's, in g's order (they are the state layout). A difference is an internal error
/// naming the first one.
Status checkCompiledParameters(const Graph& g, const BuiltFunction& f, const std::string& entry);

/// A CompiledExecutor over f for g (a training step when `updatesState`); f's returned outputs
/// must be outputs of g.
Expected<std::unique_ptr<StepExecutor>> makeBuiltExecutor(const Graph& g, const BuiltFunction& f,
                                                          bool updatesState, uint64_t seed);

}  // namespace kiln::runner
