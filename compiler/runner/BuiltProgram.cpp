// The runner of a program made by `kiln build`: `kiln train`'s command over the AOT functions the
// program links, with the step and evaluation graphs rebuilt from the model text it embeds. The
// graphs define the state layout and the data the loop feeds; the compiled functions do the math.
#include "compiler/runner/BuiltProgram.h"

#include <cstdio>
#include <sstream>

#include "compiler/driver/Args.h"
#include "compiler/driver/TrainProgram.h"
#include "compiler/runner/BuiltExecutor.h"
#include "compiler/training/CompiledExecutor.h"
#include "frontend/ModelFile.h"

namespace kiln::runner {

namespace {

std::string typeText(const std::string& dtype, const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << dtype << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
  s << "]";
  return s.str();
}

std::string baseName(const char* path) {
  std::string s = path ? path : "train";
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

}  // namespace

Status checkCompiledParameters(const Graph& g, const BuiltFunction& f, const std::string& entry) {
  const std::vector<Node*>& params = g.parameters();
  const std::string internal =
      "internal: the compiled " + entry + " does not match the model embedded in this program: ";
  for (size_t i = 0; i < std::max(params.size(), f.params.size()); ++i) {
    if (i >= params.size())
      return Error::msg(internal + "it has a parameter " + std::to_string(i) + " '" +
                        f.params[i].name + "' the rebuilt graph does not have (" +
                        std::to_string(params.size()) + " parameters)");
    const TensorType& t = params[i]->result()->type();
    std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    std::string want = typeText(std::string(dtypeName(t.dtype)), shape);
    if (i >= f.params.size())
      return Error::msg(internal + "the rebuilt graph's parameter " + std::to_string(i) + " '" +
                        params[i]->name() + "' " + want + " is not among its " +
                        std::to_string(f.params.size()) + " parameters");
    std::string got = typeText(f.params[i].dtype, f.params[i].shape);
    if (params[i]->name() != f.params[i].name || want != got)
      return Error::msg(internal + "parameter " + std::to_string(i) + " is '" + f.params[i].name +
                        "' " + got + " in the object but '" + params[i]->name() + "' " + want +
                        " in the rebuilt graph");
  }
  return Status::ok();
}

Expected<std::unique_ptr<StepExecutor>> makeBuiltExecutor(const Graph& g, const BuiltFunction& f,
                                                          bool updatesState, uint64_t seed) {
  CompiledFunction fn;
  fn.entry = f.entry;
  fn.arenaSize = f.arenaSize;
  fn.checkMessages = f.messages;
  fn.updatesState = updatesState;
  for (const std::string& name : f.returned) {
    size_t i = 0;
    while (i < g.outputs().size() && g.outputs()[i].name != name) ++i;
    if (i == g.outputs().size())
      return Error::msg("internal: the compiled function returns '" + name +
                        "', which the rebuilt graph does not output");
    fn.returnedOutputs.push_back(i);
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledExecutor> x,
                        CompiledExecutor::create(g, std::move(fn), seed, "compiled program"));
  return std::unique_ptr<StepExecutor>(std::move(x));
}

int runBuiltProgram(int argc, char** argv, const BuiltModel& m) {
  driver::TrainProgram prog;
  prog.program = baseName(argc > 0 ? argv[0] : nullptr);
  std::string built = "kiln build " + m.modelFile;
  if (!m.freeze.empty()) built += " --freeze '" + m.freeze + "'";
  if (m.learningRate > 0) {
    std::ostringstream lr;
    lr << m.learningRate;
    built += " --learning-rate " + lr.str();
  }
  prog.description =
      "A training program for " + m.modelFile + ", built by `" + built +
      "`: its training step and\n"
      "evaluation are compiled in. It takes kiln train's options, except those that change the\n"
      "compiled step (--freeze, --learning-rate: give them to kiln build; --log-gradients: use\n"
      "kiln train). Default data: Fashion-MNIST from Debian's dataset-fashion-mnist. Ctrl-C "
      "finishes\n"
      "the step, writes a checkpoint and exits; --resume continues exactly where it stopped.";
  const std::string rebuild =
      "it changes the compiled training step; give it to kiln build and rebuild (this program "
      "was built by `" +
      built + "`)";
  prog.refused = {{"freeze", rebuild},
                  {"learning-rate", rebuild},
                  {"log-gradients",
                   "the gradient statistics are outputs of a training step this program did not "
                   "compile; use kiln train --log-gradients"}};

  auto parsed = frontend::parseModel(
      m.modelData, m.binary ? GraphFormat::Binary : GraphFormat::Text, m.modelFile);
  if (!parsed) {
    std::fprintf(stderr, "internal: the embedded model does not parse: %s\n",
                 parsed.error().str().c_str());
    return 1;
  }
  prog.load = [&](const std::string&, const std::function<void(frontend::TrainingSpec&)>& adjust,
                  const std::function<int64_t(const frontend::TrainingSpec&)>& totalSteps)
      -> Expected<TrainingModel> {
    // kiln build's own adjustments, after the run's (which cannot touch the learning rate).
    auto adjustAll = [&](frontend::TrainingSpec& spec) {
      if (adjust) adjust(spec);
      if (m.learningRate > 0) spec.optimizer.learningRate = m.learningRate;
    };
    KILN_ASSIGN_OR_RETURN(TrainingModel model,
                          loadTrainingModel(*parsed, m.freeze, adjustAll, totalSteps));
    KILN_RETURN_IF_ERROR(
        checkCompiledParameters(*model.stepGraph, m.trainStep, KILN_ENTRY_TRAIN_STEP));
    KILN_RETURN_IF_ERROR(
        checkCompiledParameters(*model.evalGraph, m.evaluate, KILN_ENTRY_EVALUATE));
    return model;
  };
  prog.addExecutorOptions = [](driver::ArgParser& p) {
    p.option("threads", "T", "Threads of the runtime's kernels (default: the machine's cores)");
  };
  prog.executorFactory = [&](const driver::ArgParser& p) -> Expected<driver::ExecutorFactory> {
    if (p.has("threads")) {
      int64_t t = 0;
      if (!driver::parseInt(p.get("threads"), 1, &t) || t > 256)
        return Error::msg("--threads takes an integer in [1, 256], found '" + p.get("threads") +
                          "'");
      kiln_rt_set_num_threads(static_cast<int>(t));
    }
    return driver::ExecutorFactory([&](const Graph& g, bool updatesState, uint64_t seed) {
      return makeBuiltExecutor(g, updatesState ? m.trainStep : m.evaluate, updatesState, seed);
    });
  };
  return driver::runTrainWith(std::vector<std::string>(argv + 1, argv + argc), prog);
}

}  // namespace kiln::runner
