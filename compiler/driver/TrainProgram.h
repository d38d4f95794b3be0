// The training command's logic, parameterized by where the model and the executors come from, so
// that `kiln train` (model file; the JIT or the interpreter) and a program made by `kiln build`
// (embedded model, linked AOT functions, no LLVM) share one copy of the flags and the loop around
// train(). Defined in compiler/runner/TrainRun.cpp (library kiln_runner).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/driver/Commands.h"
#include "compiler/training/Trainer.h"
#include "runtime/Dataset.h"

namespace kiln::driver {

/// Builds the training model: `freezeRegex`, `adjust` and `totalSteps` as loadTrainingModel takes
/// them.
using TrainingModelLoader = std::function<Expected<TrainingModel>(
    const std::string& freezeRegex, const std::function<void(frontend::TrainingSpec&)>& adjust,
    const std::function<int64_t(const frontend::TrainingSpec&)>& totalSteps)>;

struct TrainProgram {
  /// The name in usage and messages: "kiln" (with the "train" command) or the program's.
  std::string program = "kiln";
  /// Null: `kiln train`, the MODEL positional names the model file.
  TrainingModelLoader load;
  /// The executor options (kiln train: --executor, --threads) and the factory they choose.
  std::function<void(ArgParser&)> addExecutorOptions;
  std::function<Expected<ExecutorFactory>(const ArgParser&)> executorFactory;
  /// Run on the step and evaluation graphs before the executors are made (kiln train: the
  /// fuse-elementwise pass minus --disable-pass); null for a built program, whose functions
  /// kiln build compiled.
  std::function<Status(const ArgParser&, Graph&)> prepareGraph;
  /// Flags the program refuses (they would change what was compiled), each with why.
  std::map<std::string, std::string> refused;
  /// The --help text (empty: kiln train's).
  std::string description;
};

/// Runs the training command on `args` (after the program or command name) for `prog`; returns the
/// exit status (2 for bad flags, 1 for errors, 130 when interrupted).
int runTrainWith(const std::vector<std::string>& args, const TrainProgram& prog);

/// Strict integer parsing: all of `s`, at least `lo`.
bool parseInt(const std::string& s, int64_t lo, int64_t* out);
/// A comma-separated list of non-negative integers.
bool parseList(const std::string& s, std::vector<int64_t>* out);
/// --data, --validation-rows, --validation-data, --classes, --keep-classes, --no-scale.
void addDataOptions(ArgParser& p);
/// Reads the data options; returns false after printing the error.
bool dataOptions(const ArgParser& p, rt::DataOptions* d);

}  // namespace kiln::driver
