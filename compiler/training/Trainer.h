// The training loop: epochs of training steps through a StepExecutor, validation after each
// epoch with the evaluation graph, early stopping, the plateau schedule, checkpoints that resume
// exactly, progress output, JSON-lines metrics, a clean stop on SIGINT/SIGTERM and on a
// non-finite loss, and the final test-set evaluation.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/training/Checkpoint.h"
#include "compiler/training/StepExecutor.h"
#include "compiler/training/TrainingGraph.h"
#include "frontend/Expand.h"
#include "frontend/ModelFile.h"
#include "runtime/Dataset.h"

namespace kiln {

/// A layer-level model ready to train: its training-step graph and its evaluation graph
/// (inference mode), the spec, and the fingerprint checkpoints carry.
struct TrainingModel {
  std::string name;
  std::unique_ptr<Graph> stepGraph;
  std::unique_ptr<Graph> evalGraph;
  frontend::TrainingSpec spec;
  TrainingGraphInfo info;
  std::string fingerprint;
  std::string inputName;          // the model's input ("x")
  std::vector<std::string> frozen;  // parameters --freeze made non-trainable
};

/// Loads `path` (a layer-level model with a training block), makes the parameters whose names
/// fully match `freezeRegex` non-trainable (empty: none; matching none is an error), and builds
/// the training-step graph with `spec` (the file's spec with command-line overrides applied by
/// the caller through `adjust`) and one_cycle's T = `totalSteps`.
Expected<TrainingModel> loadTrainingModel(const std::string& path, const std::string& freezeRegex,
                                          const std::function<void(frontend::TrainingSpec&)>& adjust,
                                          const std::function<int64_t(const frontend::TrainingSpec&)>& totalSteps);

/// The same from a model already read (e.g. one a built training program embeds): errors name
/// `m.source`'s file.
Expected<TrainingModel> loadTrainingModel(const frontend::ParsedModel& m, const std::string& freezeRegex,
                                          const std::function<void(frontend::TrainingSpec&)>& adjust,
                                          const std::function<int64_t(const frontend::TrainingSpec&)>& totalSteps);

/// The evaluation graph of `path` (inference mode) and the model's fingerprint.
Expected<TrainingModel> loadEvaluationModel(const std::string& path);
Expected<TrainingModel> loadEvaluationModel(const frontend::ParsedModel& m);

struct TrainerOptions {
  int64_t epochs = 1;
  int64_t batchSize = 32;
  uint64_t seed = 0;
  bool shuffle = true;
  /// Early stopping: stop after this many epochs without a lower val_loss and restore the best
  /// epoch's parameters; 0 turns it off.
  int64_t patience = 0;
  std::string metricsPath;    // JSON lines, appended
  std::string checkpointDir;  // checkpoints each epoch; "" for none
  int keep = 3;               // step checkpoints kept in checkpointDir
  std::string savePath;       // the final checkpoint
  bool resume = false;        // continue from checkpointDir's newest checkpoint
  /// Progress bar (a terminal) or one line per epoch; nullopt: decide by isatty(stdout).
  std::optional<bool> progressBar;
  FILE* out = stdout;
  /// Every this many steps, append the step graph's diagnostic outputs (compiler/training/
  /// Diagnostics.h: gradient norms and activation statistics) to the metrics file; 0: never.
  int64_t logGradientsEvery = 0;
  /// Test hook: behave as if SIGINT arrived after this many steps of this run (-1: never).
  int64_t stopAfterSteps = -1;
};

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t rows = 0;
  bool hasAccuracy = false;
};

struct TrainResult {
  int64_t epochs = 0, steps = 0;  // completed, in total (resumed runs included)
  EvalResult validation, test;
  bool interrupted = false, diverged = false, stoppedEarly = false;
  double seconds = 0;
  std::string checkpoint;  // the last checkpoint written, if any
};

/// Runs the evaluation graph over `d` in batches (inference mode) with `exec`'s current state;
/// the loss and accuracy are means over rows.
Expected<EvalResult> evaluate(StepExecutor& exec, const TrainingModel& m, const rt::Dataset& d, int64_t batchSize);

/// Trains `m` on `data`. `train` runs the step graph and `eval` the evaluation graph; the loop
/// copies the parameters from one to the other before each evaluation. `train`'s state must be
/// initialized (or restored from a pretrained checkpoint) by the caller; --resume state comes
/// from the checkpoint directory here. Returns an error for failures of input (data that does
/// not fit the model, a bad checkpoint); a stop by signal or a non-finite loss is a result.
Expected<TrainResult> train(const TrainingModel& m, StepExecutor& trainExec, StepExecutor& evalExec,
                            const rt::DataSplits& data, const TrainerOptions& opts);

/// Installs SIGINT/SIGTERM handlers that ask the running loop to stop after its current step.
void installStopHandlers();

}  // namespace kiln
