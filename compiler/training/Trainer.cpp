// The training loop. Exact resume rests on three facts: an epoch's batch order is a pure
// function of (seed, epoch) (rt::epochOrder), the step's random numbers are keyed by (seed,
// global step), and every piece of state plus the loop's own counters is in the checkpoint.
#include "compiler/training/Trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>

#include "compiler/passes/Pass.h"
#include "compiler/training/Diagnostics.h"
#include "compiler/training/Progress.h"
#include "frontend/TrainingMath.h"

namespace kiln {
namespace {

volatile std::sig_atomic_t gStopSignal = 0;

void onStopSignal(int sig) {
  gStopSignal = sig;
  std::signal(sig, SIG_DFL);  // a second Ctrl-C kills at once
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string fmt(const char* f, double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The metadata values that locate a run: where the loop is, and what it has seen so far.
struct LoopState {
  int64_t step = 0, epoch = 0, batch = 0;  // completed steps, epochs; batches of the current epoch
  double lossSum = 0, accSum = 0;          // of the current epoch, weighted by rows
  int64_t rowsSeen = 0;
  double learningRate = 0;
  std::vector<double> plateauHistory;      // the monitored value at each completed epoch
  double bestValLoss = INFINITY;
  int64_t bestEpoch = 0, wait = 0;
  double seconds = 0;
};

std::map<std::string, std::string> toMetadata(const LoopState& s, const TrainingModel& m, const TrainerOptions& o,
                                              int64_t trainRows, const EvalResult& val) {
  std::string hist;
  for (double v : s.plateauHistory) hist += (hist.empty() ? "" : ",") + num(v);
  return {{kFingerprintKey, m.fingerprint},
          {"kiln.model", m.name},
          {"kiln.step", std::to_string(s.step)},
          {"kiln.epoch", std::to_string(s.epoch)},
          {"kiln.batch", std::to_string(s.batch)},
          {"kiln.epoch_loss_sum", num(s.lossSum)},
          {"kiln.epoch_accuracy_sum", num(s.accSum)},
          {"kiln.epoch_rows", std::to_string(s.rowsSeen)},
          {"kiln.learning_rate", num(s.learningRate)},
          {"kiln.plateau_history", hist},
          {"kiln.best_val_loss", num(s.bestValLoss)},
          {"kiln.best_epoch", std::to_string(s.bestEpoch)},
          {"kiln.wait", std::to_string(s.wait)},
          {"kiln.seconds", num(s.seconds)},
          {"kiln.seed", std::to_string(o.seed)},
          {"kiln.shuffle", o.shuffle ? "true" : "false"},
          {"kiln.batch_size", std::to_string(o.batchSize)},
          {"kiln.train_rows", std::to_string(trainRows)},
          {"kiln.val_loss", num(val.loss)},
          {"kiln.val_accuracy", num(val.accuracy)}};
}

Expected<LoopState> fromMetadata(const std::map<std::string, std::string>& md, const std::string& path,
                                 const TrainerOptions& o, int64_t trainRows) {
  auto get = [&](const std::string& k) -> Expected<std::string> {
    auto it = md.find(k);
    if (it == md.end()) return Error(Diagnostic{{path}, {}, {}, "the checkpoint lacks the metadata '" + k + "'"});
    return it->second;
  };
  // The data position means something only with the same data order.
  for (auto [key, now] : {std::pair<std::string, std::string>{"kiln.seed", std::to_string(o.seed)},
                          {"kiln.shuffle", o.shuffle ? "true" : "false"},
                          {"kiln.batch_size", std::to_string(o.batchSize)},
                          {"kiln.train_rows", std::to_string(trainRows)}}) {
    KILN_ASSIGN_OR_RETURN(std::string was, get(key));
    if (was != now)
      return Error(Diagnostic{{path}, {}, {}, "cannot resume: the checkpoint was written with " + key.substr(5) +
                                                  " " + was + " and this run has " + now});
  }
  LoopState s;
  try {
    KILN_ASSIGN_OR_RETURN(std::string step, get("kiln.step"));
    s.step = std::stoll(step);
    KILN_ASSIGN_OR_RETURN(std::string epoch, get("kiln.epoch"));
    s.epoch = std::stoll(epoch);
    KILN_ASSIGN_OR_RETURN(std::string batch, get("kiln.batch"));
    s.batch = std::stoll(batch);
    KILN_ASSIGN_OR_RETURN(std::string ls, get("kiln.epoch_loss_sum"));
    s.lossSum = std::stod(ls);
    KILN_ASSIGN_OR_RETURN(std::string as, get("kiln.epoch_accuracy_sum"));
    s.accSum = std::stod(as);
    KILN_ASSIGN_OR_RETURN(std::string rows, get("kiln.epoch_rows"));
    s.rowsSeen = std::stoll(rows);
    KILN_ASSIGN_OR_RETURN(std::string lr, get("kiln.learning_rate"));
    s.learningRate = std::stod(lr);
    KILN_ASSIGN_OR_RETURN(std::string hist, get("kiln.plateau_history"));
    for (size_t p = 0; p < hist.size();) {
      size_t c = hist.find(',', p);
      if (c == std::string::npos) c = hist.size();
      s.plateauHistory.push_back(std::stod(hist.substr(p, c - p)));
      p = c + 1;
    }
    KILN_ASSIGN_OR_RETURN(std::string best, get("kiln.best_val_loss"));
    s.bestValLoss = std::stod(best);
    KILN_ASSIGN_OR_RETURN(std::string be, get("kiln.best_epoch"));
    s.bestEpoch = std::stoll(be);
    KILN_ASSIGN_OR_RETURN(std::string wait, get("kiln.wait"));
    s.wait = std::stoll(wait);
    KILN_ASSIGN_OR_RETURN(std::string secs, get("kiln.seconds"));
    s.seconds = std::stod(secs);
  } catch (const std::exception&) {
    return Error(Diagnostic{{path}, {}, {}, "the checkpoint's kiln.* metadata is not numeric"});
  }
  return s;
}

// A batch of rows `index` as the graph's inputs: features reshaped to the input's shape and
// converted to its dtype, labels as the labels input wants them (int64 classes, or a float
// 0/1 target for binary cross-entropy).
Expected<std::map<std::string, Tensor>> makeBatch(const TrainingModel& m, const rt::Dataset& d,
                                                  std::span<const int64_t> index) {
  const auto n = static_cast<int64_t>(index.size());
  std::map<std::string, Tensor> inputs;
  std::vector<float> x(static_cast<size_t>(n * d.rowSize()));
  std::vector<int64_t> y(static_cast<size_t>(n));
  d.gather(index, x.data(), y.data());
  for (Node* in : m.evalGraph->inputs()) {
    const TensorType& t = in->result()->type();
    Shape shape = t.shape;
    int64_t per = 1;
    for (size_t k = 1; k < shape.size(); ++k) per *= shape[k];
    if (shape.empty() || shape[0] != -1)
      return in->error("the input's first dimension must be the batch (-1) for training, found " + t.str());
    shape[0] = n;
    Tensor v(t.dtype, shape);
    if (in->name() == m.inputName) {
      if (per != d.rowSize())
        return in->error("the model's input is " + t.str() + " but the rows of " + d.source + " have " +
                         std::to_string(d.rowSize()) + " elements");
      for (int64_t i = 0; i < v.size(); ++i) v.setDouble(i, x[static_cast<size_t>(i)]);
    } else {
      if (per != 1)
        return in->error("targets of type " + t.str() + " do not come from class labels (one per row)");
      for (int64_t i = 0; i < n; ++i) v.setDouble(i, static_cast<double>(y[static_cast<size_t>(i)]));
    }
    inputs[in->name()] = std::move(v);
  }
  return inputs;
}

Status copyParameters(StepExecutor& from, StepExecutor& to) {
  std::map<std::string, Tensor> state = from.state();
  for (const std::string& name : to.stateNames()) {
    auto it = state.find(name);
    if (it == state.end()) return Error::msg("the training graph has no parameter '" + name + "'");
    KILN_RETURN_IF_ERROR(to.setState(name, it->second));
  }
  return Status::ok();
}

std::string batchesText(int64_t rows, int64_t batch) {
  int64_t full = rows / batch, rest = rows % batch;
  std::string s = std::to_string(full) + " batches of " + std::to_string(batch);
  if (rest) s += " and a last one of " + std::to_string(rest);
  return s;
}

// Every label must name one of the model's classes. The executors check this too, but only
// inside a step, naming a graph node and a row of that batch; a compiled step has by then
// already updated part of its state. Checked once up front, the message names the data.
Status checkLabels(const TrainingModel& m, const rt::Dataset& d, const char* split) {
  for (Node* in : m.evalGraph->inputs()) {
    if (in->name() == m.inputName) continue;
    for (const Node* user : in->result()->users()) {
      if (user->op() != OpKind::SparseSoftmaxCrossEntropy && user->op() != OpKind::Accuracy) continue;
      const Shape& logits = user->operand(0)->type().shape;
      const int64_t classes = logits.empty() ? 0 : logits.back();
      for (int64_t r = 0; r < d.rows; ++r) {
        const int64_t label = d.labels[static_cast<size_t>(r)];
        if (label < 0 || label >= classes)
          return Error::msg("the " + std::string(split) + " labels of " + d.source + ": label " +
                            std::to_string(label) + " in row " + std::to_string(r) + " of that split" +
                            " is not one of the model's " + std::to_string(classes) + " classes [0, " +
                            std::to_string(classes) + ")");
      }
    }
  }
  return Status::ok();
}

}  // namespace

void installStopHandlers() {
  gStopSignal = 0;
  std::signal(SIGINT, onStopSignal);
  std::signal(SIGTERM, onStopSignal);
}

Expected<TrainingModel> loadTrainingModel(const std::string& path, const std::string& freezeRegex,
                                          const std::function<void(frontend::TrainingSpec&)>& adjust,
                                          const std::function<int64_t(const frontend::TrainingSpec&)>& totalSteps) {
  KILN_ASSIGN_OR_RETURN(frontend::ParsedModel parsed, frontend::readModelFile(path));
  return loadTrainingModel(parsed, freezeRegex, adjust, totalSteps);
}

Expected<TrainingModel> loadTrainingModel(const frontend::ParsedModel& parsed, const std::string& freezeRegex,
                                          const std::function<void(frontend::TrainingSpec&)>& adjust,
                                          const std::function<int64_t(const frontend::TrainingSpec&)>& totalSteps) {
  KILN_ASSIGN_OR_RETURN(TrainingModel m, loadEvaluationModel(parsed));
  if (adjust) adjust(m.spec);
  KILN_ASSIGN_OR_RETURN(frontend::ExpandedModel st, frontend::expandModel(parsed, frontend::Expansion::Evaluation));
  if (!freezeRegex.empty()) {
    KILN_ASSIGN_OR_RETURN(m.frozen, passes::freezeParameters(*st.graph, freezeRegex));
    if (m.frozen.empty())
      return Error::msg("--freeze '" + freezeRegex + "' matches no trainable parameter of " + parsed.source.file());
  }
  TrainingGraphOptions go;
  go.totalSteps = totalSteps ? totalSteps(m.spec) : 0;
  KILN_ASSIGN_OR_RETURN(m.info, buildTrainingGraph(*st.graph, m.spec, go));
  m.stepGraph = std::move(st.graph);
  return m;
}

Expected<TrainingModel> loadEvaluationModel(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(frontend::ParsedModel parsed, frontend::readModelFile(path));
  return loadEvaluationModel(parsed);
}

Expected<TrainingModel> loadEvaluationModel(const frontend::ParsedModel& parsed) {
  KILN_ASSIGN_OR_RETURN(frontend::ExpandedModel inf, frontend::expandModel(parsed, frontend::Expansion::Inference));
  TrainingModel m;
  m.name = inf.name;
  m.fingerprint = modelFingerprint(*inf.graph);
  m.inputName = inf.input->name();
  if (!inf.training)
    return Error::msg(parsed.source.file() + ": the model has no training block (the loss and optimizer to train with)");
  KILN_ASSIGN_OR_RETURN(frontend::ExpandedModel ev, frontend::expandModel(parsed, frontend::Expansion::Evaluation));
  m.spec = *ev.training;
  m.evalGraph = std::move(ev.graph);
  return m;
}

Expected<EvalResult> evaluate(StepExecutor& exec, const TrainingModel& m, const rt::Dataset& d, int64_t batchSize) {
  EvalResult r;
  double lossSum = 0, accSum = 0;
  std::vector<int64_t> index;
  for (int64_t b = 0; b < d.rows; b += batchSize) {
    int64_t n = std::min(batchSize, d.rows - b);
    index.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) index[static_cast<size_t>(i)] = b + i;
    KILN_ASSIGN_OR_RETURN(auto inputs, makeBatch(m, d, index));
    KILN_ASSIGN_OR_RETURN(auto out, exec.run(inputs, /*step=*/0));
    lossSum += out.at("loss").getDouble(0) * static_cast<double>(n);
    if (auto it = out.find("accuracy"); it != out.end()) {
      accSum += it->second.getDouble(0) * static_cast<double>(n);
      r.hasAccuracy = true;
    }
  }
  r.rows = d.rows;
  if (d.rows > 0) {
    r.loss = lossSum / static_cast<double>(d.rows);
    r.accuracy = accSum / static_cast<double>(d.rows);
  }
  return r;
}

Expected<TrainResult> train(const TrainingModel& m, StepExecutor& trainExec, StepExecutor& evalExec,
                            const rt::DataSplits& data, const TrainerOptions& o) {
  using Clock = std::chrono::steady_clock;
  FILE* out = o.out;
  const rt::Dataset& tr = data.train;
  const int64_t batch = o.batchSize, stepsPerEpoch = (tr.rows + batch - 1) / batch;
  const int64_t evalBatch = std::max<int64_t>(batch, 1000);
  const bool plateau = m.spec.schedule.kind == frontend::ScheduleKind::Performance;
  const std::string monitor = m.spec.schedule.monitor;
  KILN_RETURN_IF_ERROR(checkLabels(m, tr, "training"));
  KILN_RETURN_IF_ERROR(checkLabels(m, data.validation, "validation"));
  KILN_RETURN_IF_ERROR(checkLabels(m, data.test, "test"));
  if (data.validation.rows == 0 && (o.patience > 0 || (plateau && monitor.starts_with("val_"))))
    return Error::msg("early stopping and a plateau schedule on " + monitor + " need a validation set");

  std::optional<CheckpointDir> dir;
  if (!o.checkpointDir.empty()) {
    dir.emplace(o.checkpointDir, o.keep);
    KILN_RETURN_IF_ERROR(dir->prepare());
  }
  LoopState s;
  s.learningRate = m.spec.optimizer.learningRate;
  TrainResult result;
  std::map<std::string, Tensor> best;  // the best epoch's parameters, for early stopping
  if (o.resume) {
    if (!dir) return Error::msg("--resume needs --checkpoint-dir (where the checkpoints are)");
    std::string latest = dir->latest();
    if (latest.empty()) return Error::msg(o.checkpointDir + ": no checkpoint to resume from (ckpt-step-*.safetensors)");
    KILN_ASSIGN_OR_RETURN(Checkpoint c, readCheckpoint(latest));
    KILN_RETURN_IF_ERROR(restoreAllState(c, latest, m.fingerprint, trainExec));
    KILN_ASSIGN_OR_RETURN(s, fromMetadata(c.metadata, latest, o, tr.rows));
    if (o.patience > 0 && s.bestEpoch > 0) {
      auto b = readCheckpoint(dir->bestPath());
      if (b) best = std::move(b->tensors);
    }
    result.checkpoint = latest;
    std::fprintf(out, "resuming from %s: %lld epochs and %lld batches done, step %lld\n", latest.c_str(),
                 static_cast<long long>(s.epoch), static_cast<long long>(s.batch), static_cast<long long>(s.step));
  }
  frontend::PlateauSchedule schedule(m.spec);
  for (double v : s.plateauHistory) schedule.endEpoch(v);  // replays the schedule's counters

  std::string err;
  MetricsLog metrics;
  if (!metrics.open(o.metricsPath, &err)) return Error::msg(err);
  EpochProgress progress(out, o.progressBar.value_or(::isatty(::fileno(out)) != 0));
  std::fprintf(out, "training %s with the %s: %lld images per epoch (%s), %lld validation, %lld test\n",
               m.name.c_str(), trainExec.kind().c_str(), static_cast<long long>(tr.rows),
               batchesText(tr.rows, batch).c_str(), static_cast<long long>(data.validation.rows),
               static_cast<long long>(data.test.rows));

  auto checkpointNow = [&](const EvalResult& val) -> Status {
    Checkpoint c{trainExec.state(), toMetadata(s, m, o, tr.rows, val)};
    if (dir) {
      KILN_ASSIGN_OR_RETURN(result.checkpoint, dir->save(c, s.step));
    } else if (!o.savePath.empty()) {
      KILN_RETURN_IF_ERROR(writeCheckpoint(o.savePath, c));
      result.checkpoint = o.savePath;
    }
    return Status::ok();
  };

  const auto runStart = Clock::now();
  const double priorSeconds = s.seconds;
  int64_t stepsThisRun = 0;
  bool stopAtEpochEnd = false;
  std::vector<int64_t> order;
  std::map<std::string, Tensor> stepOut;
  while (s.epoch < o.epochs) {
    order = rt::epochOrder(tr.rows, o.seed, s.epoch, o.shuffle);
    progress.start(s.epoch + 1, o.epochs, stepsPerEpoch, s.batch);
    const auto epochStart = Clock::now();
    int64_t rowsThisRun = 0;  // a resumed epoch runs only its remaining batches
    for (; s.batch < stepsPerEpoch; ++s.batch) {
      int64_t b0 = s.batch * batch, n = std::min(batch, tr.rows - b0);
      KILN_ASSIGN_OR_RETURN(auto inputs, makeBatch(m, tr, std::span<const int64_t>(order).subspan(b0, n)));
      KILN_ASSIGN_OR_RETURN(stepOut, trainExec.run(inputs, s.step));
      double loss = stepOut.at("loss").getDouble(0);
      if (!std::isfinite(loss)) {
        progress.finish("");
        std::fprintf(out, "stopped: the loss is %s at epoch %lld, step %lld (the learning rate may be too high); "
                     "the last good checkpoint is %s\n", std::isnan(loss) ? "NaN" : "infinite",
                     static_cast<long long>(s.epoch + 1), static_cast<long long>(s.step + 1),
                     result.checkpoint.empty() ? "none (no checkpoint was written)" : result.checkpoint.c_str());
        result.diverged = true;
        result.epochs = s.epoch;
        result.steps = s.step;
        return result;
      }
      ++s.step;
      ++stepsThisRun;
      s.lossSum += loss * static_cast<double>(n);
      if (auto it = stepOut.find("accuracy"); it != stepOut.end()) s.accSum += it->second.getDouble(0) * static_cast<double>(n);
      s.rowsSeen += n;
      rowsThisRun += n;
      if (o.logGradientsEvery > 0 && (s.step - 1) % o.logGradientsEvery == 0) {
        // Step numbers count from 1 here, so the first step of a run is always logged.
        std::map<std::string, double> row = {{"epoch", static_cast<double>(s.epoch + 1)},
                                             {"step", static_cast<double>(s.step)}};
        for (const auto& [name, t] : stepOut)
          if (name.starts_with(kDiagnosticPrefix)) row[name] = t.getDouble(0);
        metrics.write(row);
      }
      bool hasAcc = stepOut.count("accuracy") != 0;
      progress.update(s.batch + 1, n, s.lossSum / static_cast<double>(s.rowsSeen),
                      hasAcc ? s.accSum / static_cast<double>(s.rowsSeen) : -1);
      if (gStopSignal || (o.stopAfterSteps >= 0 && stepsThisRun >= o.stopAfterSteps)) {
        // On an epoch's last step, finish the epoch (validation, schedule, checkpoint) first.
        if (s.batch + 1 == stepsPerEpoch) {
          stopAtEpochEnd = true;
          continue;
        }
        ++s.batch;
        s.seconds = priorSeconds + std::chrono::duration<double>(Clock::now() - runStart).count();
        progress.finish("");
        KILN_RETURN_IF_ERROR(checkpointNow(EvalResult{}));
        std::fprintf(out, "stopped by %s after step %lld; %s\n",
                     gStopSignal == SIGTERM ? "SIGTERM" : gStopSignal ? "SIGINT" : "request",
                     static_cast<long long>(s.step),
                     result.checkpoint.empty() ? "no checkpoint written (give --checkpoint-dir or --save)"
                                               : ("checkpoint written to " + result.checkpoint +
                                                  (dir ? " (continue with --resume)" : "")).c_str());
        result.interrupted = true;
        result.epochs = s.epoch;
        result.steps = s.step;
        return result;
      }
    }
    // End of epoch: validation with the evaluation graph and this epoch's parameters.
    const double trainLoss = s.lossSum / static_cast<double>(s.rowsSeen);
    const double trainAcc = s.accSum / static_cast<double>(s.rowsSeen);
    const double epochSeconds = std::chrono::duration<double>(Clock::now() - epochStart).count();
    KILN_RETURN_IF_ERROR(copyParameters(trainExec, evalExec));
    EvalResult val;
    if (data.validation.rows > 0) {
      KILN_ASSIGN_OR_RETURN(val, evaluate(evalExec, m, data.validation, evalBatch));
    }
    ++s.epoch;
    s.batch = 0;
    s.lossSum = s.accSum = 0;
    s.rowsSeen = 0;
    const double lrUsed = stepOut.count("learning_rate") ? stepOut.at("learning_rate").getDouble(0) : s.learningRate;
    s.learningRate = lrUsed;
    if (plateau) {
      double monitored = monitor == "val_loss" ? val.loss : monitor == "val_accuracy" ? val.accuracy
                       : monitor == "accuracy" ? trainAcc : trainLoss;
      s.plateauHistory.push_back(monitored);
      double next = schedule.endEpoch(monitored);
      std::map<std::string, Tensor> st = trainExec.state();
      Tensor lr = st.at(kLearningRateState);
      lr.setDouble(0, next);
      KILN_RETURN_IF_ERROR(trainExec.setState(kLearningRateState, lr));
    }
    bool improved = data.validation.rows > 0 && val.loss < s.bestValLoss;
    if (improved) {
      s.bestValLoss = val.loss;
      s.bestEpoch = s.epoch;
      s.wait = 0;
      if (o.patience > 0) best = evalExec.state();
    } else {
      ++s.wait;
    }
    s.seconds = priorSeconds + std::chrono::duration<double>(Clock::now() - runStart).count();
    std::string line = "epoch " + std::to_string(s.epoch) + "/" + std::to_string(o.epochs) + ": " +
                       std::to_string(stepsPerEpoch) + " steps, " + fmt("%.1f s", epochSeconds) + ", " +
                       fmt("%.0f samples/s", static_cast<double>(rowsThisRun) / epochSeconds) + ", loss " +
                       fmt("%.4f", trainLoss) + (stepOut.count("accuracy") ? ", accuracy " + fmt("%.4f", trainAcc) : "");
    if (data.validation.rows > 0)
      line += ", val_loss " + fmt("%.4f", val.loss) + (val.hasAccuracy ? ", val_accuracy " + fmt("%.4f", val.accuracy) : "");
    line += ", lr " + fmt("%.3g", lrUsed);
    progress.finish(line);
    std::map<std::string, double> row = {{"epoch", static_cast<double>(s.epoch)}, {"step", static_cast<double>(s.step)},
                                         {"loss", trainLoss}, {"learning_rate", lrUsed}, {"seconds", s.seconds}};
    if (stepOut.count("accuracy")) row["accuracy"] = trainAcc;
    if (data.validation.rows > 0) {
      row["val_loss"] = val.loss;
      if (val.hasAccuracy) row["val_accuracy"] = val.accuracy;
    }
    metrics.write(row);
    if (dir) {
      KILN_RETURN_IF_ERROR(checkpointNow(val));
      if (improved) {
        Checkpoint c{trainExec.state(), toMetadata(s, m, o, tr.rows, val)};
        KILN_RETURN_IF_ERROR(dir->saveBest(c).status());
      }
    }
    result.validation = val;
    if (o.patience > 0 && s.wait >= o.patience && s.epoch < o.epochs) {
      std::fprintf(out, "early stopping: val_loss has not improved for %lld epochs; restoring epoch %lld's "
                   "parameters (val_loss %.4f)\n", static_cast<long long>(s.wait),
                   static_cast<long long>(s.bestEpoch), s.bestValLoss);
      result.stoppedEarly = true;
      break;
    }
    if (gStopSignal || stopAtEpochEnd) {
      std::fprintf(out, "stopped by %s after epoch %lld%s\n",
                   gStopSignal == SIGTERM ? "SIGTERM" : gStopSignal ? "SIGINT" : "request",
                   static_cast<long long>(s.epoch),
                   dir ? ("; checkpoint written to " + result.checkpoint + " (continue with --resume)").c_str() : "");
      result.interrupted = true;
      break;
    }
  }
  if (result.stoppedEarly || (o.patience > 0 && !best.empty() && s.bestEpoch != s.epoch)) {
    for (const auto& [name, t] : best) KILN_RETURN_IF_ERROR(trainExec.setState(name, t));
    if (!result.stoppedEarly)
      std::fprintf(out, "restored the best epoch's parameters (epoch %lld, val_loss %.4f)\n",
                   static_cast<long long>(s.bestEpoch), s.bestValLoss);
  }
  result.epochs = s.epoch;
  result.steps = s.step;
  result.seconds = std::chrono::duration<double>(Clock::now() - runStart).count();
  KILN_RETURN_IF_ERROR(copyParameters(trainExec, evalExec));
  if (!o.savePath.empty()) {
    KILN_RETURN_IF_ERROR(writeCheckpoint(o.savePath, Checkpoint{trainExec.state(),
                                                                toMetadata(s, m, o, tr.rows, result.validation)}));
    std::fprintf(out, "saved %s\n", o.savePath.c_str());
  }
  if (data.test.rows > 0 && !result.interrupted) {
    KILN_ASSIGN_OR_RETURN(result.test, evaluate(evalExec, m, data.test, evalBatch));
    std::fprintf(out, "test: loss %.4f", result.test.loss);
    if (result.test.hasAccuracy) std::fprintf(out, ", accuracy %.4f", result.test.accuracy);
    std::fprintf(out, " (%lld images)\n", static_cast<long long>(result.test.rows));
    std::map<std::string, double> row = {{"epoch", static_cast<double>(s.epoch)}, {"step", static_cast<double>(s.step)},
                                         {"test_loss", result.test.loss}, {"seconds", s.seconds}};
    if (result.test.hasAccuracy) row["test_accuracy"] = result.test.accuracy;
    metrics.write(row);
  }
  return result;
}

}  // namespace kiln
