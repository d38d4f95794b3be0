// `kiln train MODEL` and `kiln evaluate MODEL --checkpoint CKPT`: training runs on real data
// with checkpoints, resume and pretrained-layer reuse, and test-set evaluation of a checkpoint.
// The training command's logic is runTrainWith (compiler/runner/TrainRun.cpp); this file adds the
// executors kiln offers (the JIT, the interpreter).
#include <cstdio>

#include "compiler/codegen/JitExecutor.h"
#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/TrainProgram.h"
#include "compiler/passes/Pass.h"
#include "compiler/training/Trainer.h"
#include "runtime/KilnABI.h"

namespace kiln::driver {
namespace {

int fail(const Error& e) {
  std::fprintf(stderr, "%s\n", e.str().c_str());
  return 1;
}

}  // namespace

void addExecutorOptions(ArgParser& p) {
  p.option("executor", "jit|interpreter", "What runs the graphs: native code compiled in-process by LLVM (jit), or "
           "the reference interpreter", "jit");
  p.option("threads", "T", "Threads of the compiled code's runtime kernels (default: the machine's cores; the "
           "interpreter runs on one)");
  p.repeated("disable-pass", "NAME", "Skip this pass wherever the pipeline runs it");
}

// The passes compiled graphs get: fuse-elementwise (buildFusionPipeline) minus --disable-pass.
// Nothing else: the graphs define the state a checkpoint holds. The interpreter ignores the
// fusion groups, so both executors run the same graph.
Status prepareGraph(const ArgParser& p, Graph& g) {
  passes::PassManagerOptions pmo;
  for (const std::string& d : p.getAll("disable-pass")) pmo.disabled.insert(d);
  passes::PassManager pm(pmo);
  passes::buildFusionPipeline(pm);
  KILN_ASSIGN_OR_RETURN(bool changed, pm.run(g));
  (void)changed;
  return Status::ok();
}

Expected<ExecutorFactory> executorFactory(const ArgParser& p) {
  const std::string kind = p.get("executor");
  if (p.has("threads")) {
    int64_t t = 0;
    if (!parseInt(p.get("threads"), 1, &t) || t > 256)
      return Error::msg("--threads takes an integer in [1, 256], found '" + p.get("threads") + "'");
    kiln_rt_set_num_threads(static_cast<int>(t));
  }
  if (kind == "jit") return ExecutorFactory(codegen::makeJitExecutor);
  if (kind == "interpreter")
    return ExecutorFactory([](const Graph& g, bool updatesState, uint64_t seed) -> Expected<std::unique_ptr<StepExecutor>> {
      return std::unique_ptr<StepExecutor>(std::make_unique<InterpreterExecutor>(g, updatesState, seed));
    });
  return Error::msg("--executor takes jit or interpreter, found '" + kind + "'");
}

int runTrain(const std::vector<std::string>& args) {
  TrainProgram prog;
  prog.addExecutorOptions = addExecutorOptions;
  prog.executorFactory = executorFactory;
  prog.prepareGraph = prepareGraph;
  return runTrainWith(args, prog);
}

int runEvaluate(const std::vector<std::string>& args) {
  ArgParser p("evaluate MODEL --checkpoint CKPT [options]",
              "Evaluates a checkpoint of a model on the validation and test sets (inference mode:\n"
              "batch norm uses its moving statistics, dropout is off).");
  p.positional("MODEL", "The layer-level model file the checkpoint was trained from");
  p.option("checkpoint", "CKPT", "The checkpoint (safetensors) to evaluate");
  addDataOptions(p);
  p.option("batch-size", "B", "Rows per evaluation batch", "1000");
  addExecutorOptions(p);
  if (auto exit = p.parseOrExit(args)) return *exit;
  if (!p.has("checkpoint")) {
    std::fprintf(stderr, "kiln evaluate: --checkpoint CKPT is required\n");
    return 2;
  }
  rt::DataOptions data;
  int64_t batch = 1000;
  if (!dataOptions(p, &data)) return 2;
  if (!parseInt(p.get("batch-size"), 1, &batch)) {
    std::fprintf(stderr, "kiln evaluate: --batch-size takes a positive integer\n");
    return 2;
  }
  auto model = loadEvaluationModel(p.positionals()[0]);
  if (!model) return fail(model.error());
  const std::string path = p.get("checkpoint");
  auto c = readCheckpoint(path);
  if (!c) return fail(c.error());
  if (Status s = prepareGraph(p, *model->evalGraph); !s) return fail(s.error());
  auto factory = executorFactory(p);
  if (!factory) return fail(factory.error());
  auto execOr = (*factory)(*model->evalGraph, /*updatesState=*/false, model->spec.seed);
  if (!execOr) return fail(execOr.error());
  StepExecutor& exec = **execOr;
  if (Status s = exec.initialize(0); !s) return fail(s.error());
  if (Status s = restoreAllState(*c, path, model->fingerprint, exec); !s) return fail(s.error());
  rt::DataSplits splits;
  if (std::string e = rt::loadDataSplits(data, &splits); !e.empty()) return fail(Error::msg(e));
  for (auto [name, d] : {std::pair<const char*, const rt::Dataset*>{"validation", &splits.validation},
                         {"test", &splits.test}}) {
    if (d->rows == 0) continue;
    auto r = evaluate(exec, *model, *d, batch);
    if (!r) return fail(r.error());
    std::printf("%s: loss %.4f", name, r->loss);
    if (r->hasAccuracy) std::printf(", accuracy %.4f", r->accuracy);
    std::printf(" (%lld images)\n", static_cast<long long>(r->rows));
  }
  return 0;
}

}  // namespace kiln::driver
