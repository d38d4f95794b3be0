// kiln's subcommands. Each takes its arguments (after the command name) and returns the exit
// status; errors go to stderr.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"

namespace kiln::driver {

int runCheck(const std::vector<std::string>& args);
int runRun(const std::vector<std::string>& args);
int runOps(const std::vector<std::string>& args);

/// Reads and verifies a model (an op-level graph, .pbtxt or .pb).
Expected<std::unique_ptr<Graph>> loadModel(const std::string& path);

/// .npy <-> Tensor (float32, float64, int32, int64, bool).
Expected<Tensor> readTensorNpy(const std::string& path);
Status writeTensorNpy(const Tensor& t, const std::string& path);

}  // namespace kiln::driver
