// `kiln predict MODEL --checkpoint CKPT --input X.npy -o probs.npy [--mc-samples K]`: class
// probabilities (or the model's outputs) for new data, and Monte Carlo dropout: K passes with
// dropout left on (batch norm stays in inference mode), their mean and standard deviation, as
// chapter 11 describes (Gal and Ghahramani, 2016).
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/training/Checkpoint.h"
#include "compiler/training/StepExecutor.h"
#include "ir/Builder.h"
#include "ir/ProtoIO.h"
#include "ir/Verifier.h"
#include "runtime/Npy.h"

namespace kiln::driver {
namespace {

int fail(const Error& e) {
  std::fprintf(stderr, "%s\n", e.str().c_str());
  return 1;
}

/// X.npy as float32 rows of `rowSize` elements: any numeric dtype; uint8 is scaled to [0, 1]
/// unless `scale8bit` is false (as kiln train scales 8-bit pixels).
Expected<Tensor> readRows(const std::string& path, const Shape& rowShape, bool scale8bit) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, readFileBytes(path));
  rt::NpyArray a;
  if (std::string err = rt::decodeNpy(bytes, &a); !err.empty()) return Error(Diagnostic{{path}, {}, {}, err});
  int64_t rowSize = 1;
  for (int64_t d : rowShape) rowSize *= d;
  int64_t total = 1;
  for (int64_t d : a.shape) total *= d;
  if (a.shape.empty() || a.shape[0] <= 0 || total % a.shape[0] != 0 || total / a.shape[0] != rowSize)
    return Error(Diagnostic{{path}, {}, {}, "expected rows of " + std::to_string(rowSize) +
                                                 " elements (the model's input is " + shapeStr(rowShape) +
                                                 " per row), found an array of shape " + shapeStr(a.shape)});
  const int64_t rows = a.shape[0];
  Shape shape = rowShape;
  shape.insert(shape.begin(), rows);
  Tensor t(DType::Float32, shape);
  auto* out = static_cast<float*>(t.raw());
  const unsigned char* p = a.data.data();
  for (int64_t i = 0; i < total; ++i) {
    double v;
    if (a.descr == "<f4") { float f; std::memcpy(&f, p + 4 * i, 4); v = f; }
    else if (a.descr == "<f8") { std::memcpy(&v, p + 8 * i, 8); }
    else if (a.descr == "<i4") { int32_t x; std::memcpy(&x, p + 4 * i, 4); v = x; }
    else if (a.descr == "<i8") { int64_t x; std::memcpy(&x, p + 8 * i, 8); v = static_cast<double>(x); }
    else if (a.descr == "|u1") { v = p[i] / (scale8bit ? 255.0 : 1.0); }
    else { v = p[i] != 0; }
    out[i] = static_cast<float>(v);
  }
  return t;
}

/// The model's output made a prediction: softmax probabilities for a softmax cross-entropy
/// model, sigmoid probabilities for a binary one, the raw values for a regression.
Status addPredictionOutput(Graph& g, const std::optional<frontend::TrainingSpec>& spec, bool logits,
                           std::string* what) {
  *what = "outputs";
  if (logits || !spec || g.outputs().size() != 1) return Status::ok();
  Builder b(g);
  b.setPrefix("predict/");
  Value* y = g.outputs()[0].value;
  switch (spec->loss) {
    case frontend::LossKind::SparseSoftmaxCrossEntropy:
      g.setOutput(0, b.op(OpKind::Softmax, {y}, {}, "softmax"));
      *what = "class probabilities";
      break;
    case frontend::LossKind::BinaryCrossEntropyWithLogits:
      g.setOutput(0, b.op(OpKind::Sigmoid, {y}, {}, "sigmoid"));
      *what = "probabilities";
      break;
    case frontend::LossKind::MeanSquaredError:
      break;
  }
  return b.takeStatus();
}

std::string stdPathFor(const std::string& out) {
  std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + ".std.npy")).string();
}

}  // namespace

int runPredict(const std::vector<std::string>& args) {
  ArgParser p("predict MODEL --checkpoint CKPT --input X.npy -o OUT.npy [options]",
              "Runs a trained model on new rows (inference mode: batch norm uses its moving\n"
              "statistics, dropout is off) and writes class probabilities (softmax or sigmoid of the\n"
              "last layer, by the model's loss) as .npy. With --mc-samples K > 1, Monte Carlo dropout:\n"
              "K passes with dropout on, writing their mean to OUT.npy and their standard deviation\n"
              "to OUT.std.npy (a measure of the model's uncertainty).");
  p.positional("MODEL", "The layer-level model file the checkpoint was trained from");
  p.option("checkpoint", "CKPT", "The trained weights (safetensors, from kiln train --save)");
  p.option("input", "X.npy", "Rows to predict: [N, ...] of any numeric dtype (uint8 is scaled to [0, 1])");
  p.option("output", "OUT.npy", "Where to write the predictions [N, outputs]");
  p.alias('o', "output");
  p.option("mc-samples", "K", "Stochastic passes with dropout on (Monte Carlo dropout)", "1");
  p.option("std-output", "FILE", "Where --mc-samples writes the standard deviation (default OUT.std.npy)");
  p.option("labels", "Y.npy", "True labels: print the accuracy of the (mean) prediction");
  p.option("seed", "S", "Seed of the dropout masks", "0");
  p.option("batch-size", "B", "Rows per pass", "256");
  p.flag("logits", "Write the last layer's raw outputs instead of probabilities");
  p.flag("no-scale", "Do not divide uint8 inputs by 255");
  addExecutorOptions(p);
  if (auto exit = p.parseOrExit(args)) return *exit;
  for (const char* required : {"checkpoint", "input", "output"})
    if (!p.has(required)) {
      std::fprintf(stderr, "kiln predict: --%s is required (see kiln predict --help)\n", required);
      return 2;
    }
  int64_t samples = 1, batch = 256, seed = 0;
  for (auto [name, lo, out] : {std::tuple<const char*, int64_t, int64_t*>{"mc-samples", 1, &samples},
                               {"batch-size", 1, &batch}, {"seed", 0, &seed}}) {
    try {
      size_t used = 0;
      *out = std::stoll(p.get(name), &used);
      if (used != p.get(name).size() || *out < lo) throw std::invalid_argument(name);
    } catch (const std::exception&) {
      std::fprintf(stderr, "kiln predict: --%s takes an integer >= %lld, found '%s'\n", name,
                   static_cast<long long>(lo), p.get(name).c_str());
      return 2;
    }
  }

  const std::string modelPath = p.positionals()[0];
  auto loaded = frontend::loadModelFile(modelPath, frontend::Expansion::Inference);
  if (!loaded) return fail(loaded.error());
  Graph& g = *loaded->graph;
  const std::string fingerprint = modelFingerprint(g);
  if (g.inputs().size() != 1)
    return fail(Error::msg(modelPath + ": kiln predict needs a model with one input, found " +
                           std::to_string(g.inputs().size())));
  std::string what;
  if (Status s = addPredictionOutput(g, loaded->training, p.has("logits"), &what); !s) return fail(s.error());
  int dropoutNodes = 0;
  if (samples > 1) {
    for (Node* n : g.nodes())
      if (n->op() == OpKind::Dropout || n->op() == OpKind::AlphaDropout) {
        n->setAttr("training", true);
        ++dropoutNodes;
      }
    if (dropoutNodes == 0)
      return fail(Error::msg(modelPath + ": --mc-samples needs dropout layers, and the model has none "
                             "(every pass would give the same answer)"));
  }
  if (Status s = verifyGraph(g); !s) return fail(s.error());
  if (Status s = prepareGraph(p, g); !s) return fail(s.error());

  auto ckpt = readCheckpoint(p.get("checkpoint"));
  if (!ckpt) return fail(ckpt.error());
  auto factory = executorFactory(p);
  if (!factory) return fail(factory.error());
  auto execOr = (*factory)(g, /*updatesState=*/false, static_cast<uint64_t>(seed));
  if (!execOr) return fail(execOr.error());
  StepExecutor& exec = **execOr;
  if (Status s = exec.initialize(0); !s) return fail(s.error());
  if (Status s = restoreAllState(*ckpt, p.get("checkpoint"), fingerprint, exec); !s) return fail(s.error());

  Node* in = g.inputs()[0];
  Shape rowShape(in->result()->type().shape.begin() + 1, in->result()->type().shape.end());
  auto x = readRows(p.get("input"), rowShape, !p.has("no-scale"));
  if (!x) return fail(x.error());
  const int64_t rows = x->dim(0);
  const Value* yv = g.outputs()[0].value;
  Shape outShape = yv->type().shape;
  outShape[0] = rows;
  const int64_t width = outShape.size() > 1 ? Tensor(DType::Float32, outShape).size() / rows : 1;
  // Running sums over the samples, in double: mean and (population) standard deviation.
  std::vector<double> sum(static_cast<size_t>(rows * width)), sumSq(sum.size());
  for (int64_t k = 0; k < samples; ++k) {
    for (int64_t b0 = 0; b0 < rows; b0 += batch) {
      int64_t n = std::min(batch, rows - b0);
      Shape bs = x->shape();
      bs[0] = n;
      Tensor xb(DType::Float32, bs);
      const int64_t per = x->size() / rows;
      std::memcpy(xb.raw(), static_cast<const float*>(x->raw()) + b0 * per, static_cast<size_t>(n * per) * sizeof(float));
      // Each pass draws its own masks: the step keys the random numbers.
      auto out = exec.run({{in->name(), std::move(xb)}}, k);
      if (!out) return fail(out.error());
      const Tensor& y = out->at(g.outputs()[0].name);
      for (int64_t i = 0; i < n * width; ++i) {
        double v = y.getDouble(i);
        sum[static_cast<size_t>(b0 * width + i)] += v;
        sumSq[static_cast<size_t>(b0 * width + i)] += v * v;
      }
    }
  }
  Tensor mean(DType::Float32, outShape), sd(DType::Float32, outShape);
  for (int64_t i = 0; i < rows * width; ++i) {
    double m = sum[static_cast<size_t>(i)] / static_cast<double>(samples);
    double var = std::max(0.0, sumSq[static_cast<size_t>(i)] / static_cast<double>(samples) - m * m);
    mean.setDouble(i, m);
    sd.setDouble(i, std::sqrt(var));
  }
  if (Status s = writeTensorNpy(mean, p.get("output")); !s) return fail(s.error());
  std::printf("wrote %s: %s for %lld rows", p.get("output").c_str(), what.c_str(), static_cast<long long>(rows));
  if (samples > 1) {
    std::string stdPath = p.has("std-output") ? p.get("std-output") : stdPathFor(p.get("output"));
    if (Status s = writeTensorNpy(sd, stdPath); !s) return fail(s.error());
    std::printf(" (mean of %lld passes with %d dropout layers on; standard deviation in %s)",
                static_cast<long long>(samples), dropoutNodes, stdPath.c_str());
  }
  std::printf("\n");
  if (p.has("labels")) {
    auto labels = readRows(p.get("labels"), {}, /*scale8bit=*/false);
    if (!labels) return fail(labels.error());
    if (labels->size() != rows)
      return fail(Error(Diagnostic{{p.get("labels")}, {}, {}, "expected " + std::to_string(rows) +
                                                               " labels (one per input row), found " +
                                                               std::to_string(labels->size())}));
    if (width < 2) return fail(Error::msg("--labels needs class outputs (one column per class)"));
    int64_t right = 0;
    double stdOfChoice = 0;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t best = 0;
      for (int64_t c = 1; c < width; ++c)
        if (mean.getDouble(r * width + c) > mean.getDouble(r * width + best)) best = c;
      right += best == static_cast<int64_t>(labels->getDouble(r));
      stdOfChoice += sd.getDouble(r * width + best);
    }
    std::printf("accuracy %.4f (%lld of %lld)", static_cast<double>(right) / static_cast<double>(rows),
                static_cast<long long>(right), static_cast<long long>(rows));
    if (samples > 1)
      std::printf(", mean standard deviation of the chosen class's probability %.4f",
                  stdOfChoice / static_cast<double>(rows));
    std::printf("\n");
  }
  return 0;
}

}  // namespace kiln::driver
