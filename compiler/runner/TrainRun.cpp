// kiln train's command logic (flags, data, model, executors, the loop) for `kiln train` and for the
// programs `kiln build` links: runTrainWith and the data options kiln evaluate shares. No LLVM here:
// the executors come from the TrainProgram.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <csignal>

#include "compiler/driver/Args.h"
#include "compiler/driver/TrainProgram.h"
#include "compiler/training/Diagnostics.h"
#include "compiler/training/Trainer.h"

namespace kiln::driver {
namespace {

int fail(const Error& e) {
  std::fprintf(stderr, "%s\n", e.str().c_str());
  return 1;
}

}  // namespace

bool parseInt(const std::string& s, int64_t lo, int64_t* out) {
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size() || v < lo) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool parseList(const std::string& s, std::vector<int64_t>* out) {
  size_t p = 0;
  while (p <= s.size()) {
    size_t c = s.find(',', p);
    if (c == std::string::npos) c = s.size();
    int64_t v;
    if (!parseInt(s.substr(p, c - p), 0, &v)) return false;
    out->push_back(v);
    p = c + 1;
  }
  return !out->empty();
}

void addDataOptions(ArgParser& p) {
  p.option("data", "DIR", "The data directory: IDX, x_train.npy/y_train.npy/x_test.npy/y_test.npy, or "
           "train.csv/test.csv", rt::kDefaultDataDir);
  p.option("validation-rows", "N", "The first N training rows are the validation set (default 5000; 0 with "
           "--validation-data)");
  p.option("validation-data", "FILE[,LABELS]", "A separate validation set: val.csv, x_val.npy,y_val.npy, or IDX "
           "images,labels files");
  p.option("classes", "LIST", "Keep only these classes and relabel them 0, 1, ... in this order "
           "(e.g. 0,1,2,3,4,7,8,9 or 5,6)");
  p.option("keep-classes", "LIST", "Keep only these classes, with their labels unchanged");
  p.flag("no-scale", "Do not divide 8-bit pixel values by 255");
}

// Reads the data options; returns false after printing the error.
bool dataOptions(const ArgParser& p, rt::DataOptions* d) {
  d->dir = p.get("data");
  d->scalePixels = !p.has("no-scale");
  d->validationRows = p.has("validation-data") ? 0 : 5000;
  if (p.has("validation-data")) {
    std::string v = p.get("validation-data");
    size_t comma = v.find(',');
    d->validationFeatures = v.substr(0, comma);
    if (comma != std::string::npos) d->validationLabels = v.substr(comma + 1);
  }
  if (p.has("validation-rows") && !parseInt(p.get("validation-rows"), 0, &d->validationRows)) {
    std::fprintf(stderr, "kiln: --validation-rows takes a non-negative integer\n");
    return false;
  }
  if (p.has("classes") && p.has("keep-classes")) {
    std::fprintf(stderr, "kiln: give --classes or --keep-classes, not both\n");
    return false;
  }
  std::string list = p.has("classes") ? p.get("classes") : p.get("keep-classes");
  d->relabel = p.has("classes");
  if (!list.empty() && !parseList(list, &d->classes)) {
    std::fprintf(stderr, "kiln: --classes takes a comma-separated list of labels, found '%s'\n", list.c_str());
    return false;
  }
  return true;
}

int runTrainWith(const std::vector<std::string>& args, const TrainProgram& prog) {
  const bool builtIn = static_cast<bool>(prog.load);
  // Messages name what the user ran: kiln train, or the built program.
  const char* cmd = builtIn ? prog.program.c_str() : "kiln train";
  ArgParser p(builtIn ? "[options]" : "train MODEL [options]",
              !prog.description.empty() ? prog.description :
              "Trains a layer-level model on real data (default: Fashion-MNIST from Debian's\n"
              "dataset-fashion-mnist), validating after each epoch and evaluating the test set at\n"
              "the end. Options override the model's training block. Steps run as native code that\n"
              "LLVM compiles in-process (--executor interpreter for the reference interpreter).\n"
              "Ctrl-C finishes the step, writes a checkpoint and exits; --resume continues exactly\n"
              "where it stopped.");
  p.setProgram(prog.program);
  if (!builtIn) p.positional("MODEL", "The layer-level model file (.pbtxt or .pb) with a training block");
  addDataOptions(p);
  p.option("epochs", "N", "Epochs to train (in total, counting resumed ones)");
  p.option("batch-size", "B", "Mini-batch size (the last, partial batch of an epoch is kept)");
  p.option("seed", "S", "Seed of initializers, dropout and shuffling");
  p.option("learning-rate", "LR", "The optimizer's (initial) learning rate, e.g. lower to fine-tune unfrozen layers");
  p.flag("no-shuffle", "Visit the training rows in file order");
  p.option("train-limit", "N", "Train on the first N rows of the training portion (after the split and filter)");
  p.option("patience", "N", "Early stopping: stop after N epochs without a lower val_loss and restore the best "
           "epoch's parameters (0: off)", "0");
  p.option("metrics", "FILE", "Append one JSON line per epoch (and one with the test figures)");
  p.option("checkpoint-dir", "DIR", "Write a checkpoint after each epoch (and on Ctrl-C) here; keeps best.safetensors");
  p.option("keep", "N", "Step checkpoints to keep in --checkpoint-dir", "3");
  p.option("save", "FILE", "Write the final checkpoint (safetensors) to FILE");
  p.flag("resume", "Continue from the newest checkpoint in --checkpoint-dir");
  p.option("init-from", "CKPT", "Restore pretrained tensors from this checkpoint (with --restore)");
  p.option("restore", "REGEX", "Names of the tensors to restore from --init-from (e.g. 'hidden[12]/.*')");
  p.repeated("rename", "FROM=TO", "Read checkpoint names starting with FROM as starting with TO");
  p.option("freeze", "REGEX", "Make the matching parameters non-trainable for this run");
  p.option("log-gradients", "N", "Every N steps, append each layer's gradient norm and its activations' mean, "
           "std and dead or saturated fraction to --metrics (see kiln plot)");
  if (prog.addExecutorOptions) prog.addExecutorOptions(p);
  p.flag("no-progress", "One line per epoch even on a terminal");
  p.option("stop-after-steps", "N", "Stop as Ctrl-C would after N steps of this run (for tests)");
  if (auto exit = p.parseOrExit(args)) return *exit;
  for (const auto& [flag, why] : prog.refused) {
    if (!p.has(flag)) continue;
    std::fprintf(stderr, "%s: --%s cannot be given here: %s\n", prog.program.c_str(), flag.c_str(), why.c_str());
    return 2;
  }
  rt::DataOptions data;
  if (!dataOptions(p, &data)) return 2;
  int64_t epochs = -1, batch = -1, seed = -1, patience = 0, keep = 3, stopAfter = -1, logGrads = 0;
  struct IntFlag {
    const char* name;
    int64_t lo;
    int64_t* out;
  };
  for (IntFlag f : {IntFlag{"epochs", 0, &epochs}, {"batch-size", 1, &batch}, {"seed", 0, &seed},
                    {"patience", 0, &patience}, {"keep", 1, &keep},
                    {"train-limit", 1, &data.trainLimit}, {"stop-after-steps", 1, &stopAfter},
                    {"log-gradients", 1, &logGrads}}) {
    if (p.has(f.name) && !parseInt(p.get(f.name), f.lo, f.out)) {
      std::fprintf(stderr, "%s: --%s takes an integer >= %lld, found '%s'\n", cmd, f.name,
                   static_cast<long long>(f.lo), p.get(f.name).c_str());
      return 2;
    }
  }
  if (logGrads > 0 && !p.has("metrics")) {
    std::fprintf(stderr, "%s: --log-gradients writes to the metrics file: give --metrics FILE too\n", cmd);
    return 2;
  }
  if (p.has("restore") != p.has("init-from")) {
    std::fprintf(stderr, "%s: --init-from and --restore go together\n", cmd);
    return 2;
  }
  std::vector<Rename> renames;
  for (const std::string& r : p.getAll("rename")) {
    size_t eq = r.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "%s: --rename takes FROM=TO, found '%s'\n", cmd, r.c_str());
      return 2;
    }
    renames.push_back({r.substr(0, eq), r.substr(eq + 1)});
  }

  rt::DataSplits splits;
  if (std::string e = rt::loadDataSplits(data, &splits); !e.empty()) return fail(Error::msg(e));
  double learningRate = -1;
  if (p.has("learning-rate")) {
    char* end = nullptr;
    learningRate = std::strtod(p.get("learning-rate").c_str(), &end);
    if (end == p.get("learning-rate").c_str() || *end != '\0' || !(learningRate > 0) || !std::isfinite(learningRate)) {
      std::fprintf(stderr, "%s: --learning-rate takes a positive number, found '%s'\n", cmd,
                   p.get("learning-rate").c_str());
      return 2;
    }
  }
  auto adjust = [&](frontend::TrainingSpec& spec) {
    if (learningRate > 0) spec.optimizer.learningRate = learningRate;
    if (epochs >= 0) spec.epochs = epochs;
    if (batch > 0) spec.batchSize = batch;
    if (seed >= 0) spec.seed = static_cast<uint64_t>(seed);
  };
  auto totalSteps = [&](const frontend::TrainingSpec& spec) {
    return spec.epochs * ((splits.train.rows + spec.batchSize - 1) / spec.batchSize);
  };
  auto model = builtIn ? prog.load(p.get("freeze"), adjust, totalSteps)
                       : loadTrainingModel(p.positionals()[0], p.get("freeze"), adjust, totalSteps);
  if (!model) return fail(model.error());
  if (learningRate > 0 && (model->spec.schedule.kind == frontend::ScheduleKind::PiecewiseConstant ||
                           model->spec.schedule.kind == frontend::ScheduleKind::OneCycle)) {
    std::fprintf(stderr, "%s: --learning-rate does not apply: the model's %s schedule sets the rates\n", cmd,
                 std::string(frontend::scheduleName(model->spec.schedule.kind)).c_str());
    return 2;
  }
  if (!model->frozen.empty()) {
    std::printf("frozen (%zu):", model->frozen.size());
    for (const std::string& n : model->frozen) std::printf(" %s", n.c_str());
    std::printf("\n");
  }
  if (logGrads > 0) {
    auto names = addTrainingDiagnostics(*model->stepGraph, model->info);
    if (!names) return fail(names.error());
  }
  if (prog.prepareGraph)
    for (Graph* g : {model->stepGraph.get(), model->evalGraph.get()})
      if (Status s = prog.prepareGraph(p, *g); !s) return fail(s.error());
  const frontend::TrainingSpec& spec = model->spec;
  if (!prog.executorFactory) return fail(Error::msg("internal: " + prog.program + " has no executors"));
  auto factory = prog.executorFactory(p);
  if (!factory) return fail(factory.error());
  auto trainExecOr = (*factory)(*model->stepGraph, /*updatesState=*/true, spec.seed);
  if (!trainExecOr) return fail(trainExecOr.error());
  auto evalExecOr = (*factory)(*model->evalGraph, /*updatesState=*/false, spec.seed);
  if (!evalExecOr) return fail(evalExecOr.error());
  StepExecutor& trainExec = **trainExecOr;
  StepExecutor& evalExec = **evalExecOr;
  if (Status s = trainExec.initialize(spec.seed); !s) return fail(s.error());
  if (p.has("init-from")) {
    if (p.has("resume")) {
      std::fprintf(stderr, "%s: --init-from starts a new run; --resume continues one (not both)\n", cmd);
      return 2;
    }
    auto c = readCheckpoint(p.get("init-from"));
    if (!c) return fail(c.error());
    auto report = restoreMatching(*c, p.get("init-from"), p.get("restore"), renames, trainExec);
    if (!report) return fail(report.error());
    std::printf("restored from %s (%zu):", p.get("init-from").c_str(), report->restored.size());
    for (const std::string& n : report->restored) std::printf(" %s", n.c_str());
    std::printf("\ninitialized (%zu):", report->initialized.size());
    for (const std::string& n : report->initialized) std::printf(" %s", n.c_str());
    std::printf("\n");
    if (!report->skippedSlots.empty())
      std::printf("skipped %zu optimizer slots this run does not have\n", report->skippedSlots.size());
  }
  TrainerOptions o;
  o.epochs = spec.epochs;
  o.batchSize = spec.batchSize;
  o.seed = spec.seed;
  o.shuffle = !p.has("no-shuffle");
  o.patience = patience;
  o.metricsPath = p.get("metrics");
  o.checkpointDir = p.get("checkpoint-dir");
  o.keep = static_cast<int>(keep);
  o.savePath = p.get("save");
  o.resume = p.has("resume");
  o.stopAfterSteps = stopAfter;
  o.logGradientsEvery = logGrads;
  if (p.has("no-progress")) o.progressBar = false;
  installStopHandlers();
  auto r = train(*model, trainExec, evalExec, splits, o);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (!r) return fail(r.error());
  if (r->diverged) return 1;
  if (r->interrupted) return 130;
  return 0;
}

}  // namespace kiln::driver
