// The prepare graph: computation that depends only on parameters and constants (folded weights
// W' = W * gamma / sqrt(var + eps), ...) moved out of the inference graph, to be evaluated once
// when the parameters are loaded instead of on every prediction.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"

namespace kiln::passes {

/// Moves every parameter-only computation of `g` (an inference graph: its parameters do not
/// change between calls) into a new graph and returns it. Each value of it that `g` still
/// reads becomes a new non-trainable parameter of `g` named `<node>/prepared`, and an output
/// of the same name of the prepare graph; parameters `g` no longer reads are removed from it.
/// Both graphs are verified. A graph with nothing to hoist gives a prepare graph without
/// outputs and is left unchanged.
Expected<std::unique_ptr<Graph>> hoistParameterMath(Graph& g);

/// Runs `prepare` (from hoistParameterMath) with the interpreter on the model's parameter
/// values (`params`, by the original names) and returns the values of every parameter of
/// `main`: the prepared ones and the original ones `main` still reads.
Expected<std::map<std::string, Tensor>> prepareParameters(
    const Graph& prepare, const Graph& main, const std::map<std::string, Tensor>& params);

}  // namespace kiln::passes
