// kiln's subcommands. Each takes its arguments (after the command name) and returns the exit
// status; errors go to stderr.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler/interpreter/Tensor.h"
#include "compiler/training/StepExecutor.h"
#include "frontend/Expand.h"
#include "ir/Graph.h"

namespace kiln::driver {

int runCheck(const std::vector<std::string>& args);
int runRun(const std::vector<std::string>& args);
int runOps(const std::vector<std::string>& args);
int runOpt(const std::vector<std::string>& args);
int runDot(const std::vector<std::string>& args);
int runTrain(const std::vector<std::string>& args);
int runEvaluate(const std::vector<std::string>& args);
int runBench(const std::vector<std::string>& args);
int runPredict(const std::vector<std::string>& args);
int runPlot(const std::vector<std::string>& args);
int runBuild(const std::vector<std::string>& args);
int runCompile(const std::vector<std::string>& args);

class ArgParser;
/// Makes the executor of a graph (a training step when updatesState, else an evaluation):
/// the JIT, the interpreter, or a built program's own compiled functions.
using ExecutorFactory =
    std::function<Expected<std::unique_ptr<StepExecutor>>(const Graph&, bool updatesState, uint64_t seed)>;
/// --executor jit|interpreter and --threads T, shared by the commands that run models.
void addExecutorOptions(ArgParser& p);
/// The factory those options choose (and the runtime's thread count, set as a side effect).
Expected<ExecutorFactory> executorFactory(const ArgParser& p);
/// Runs on a graph before executorFactory's executor compiles it: the fuse-elementwise pass
/// minus --disable-pass (also an executor option).
Status prepareGraph(const ArgParser& p, Graph& g);

/// A model file of either level, read and verified.
struct LoadedModel {
  /// For an op-level graph only `model.graph` and `model.name` are set; for a layer-level model,
  /// its expansion (layers, training spec).
  frontend::ExpandedModel model;
  bool layerLevel = false;
};

/// Reads a layer-level model (expanded in `mode`) or an op-level graph (`mode` does not apply),
/// whichever the file holds (frontend::isModelData tells), with the errors of that format.
Expected<LoadedModel> loadAnyModel(const std::string& path,
                                   frontend::Expansion mode = frontend::Expansion::Inference);

/// Reads and verifies a model of either level (.pbtxt or .pb) as an op-level graph; a
/// layer-level model is expanded in inference form.
Expected<std::unique_ptr<Graph>> loadModel(const std::string& path);

/// .npy <-> Tensor (float32, float64, int32, int64, bool).
Expected<Tensor> readTensorNpy(const std::string& path);
Status writeTensorNpy(const Tensor& t, const std::string& path);

}  // namespace kiln::driver
