// `kiln compile MODEL --mode infer|train -o DIR`: ahead-of-time compilation to DIR/NAME.o and
// DIR/NAME.h (compiler/codegen/Aot.h), with the weights of a checkpoint or of the initializers.
#include <chrono>
#include <cstdio>

#include "compiler/codegen/Aot.h"
#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/interpreter/Interpreter.h"
#include "compiler/passes/Pass.h"
#include "compiler/passes/Prepare.h"
#include "compiler/training/Checkpoint.h"
#include "compiler/training/Trainer.h"
#include "runtime/KilnABI.h"

namespace kiln::driver {

namespace {

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// The initial value of every parameter of `g`, from its initializers drawn from `seed` (the
/// interpreter's initializeParameters, so `kiln run` with the same seed sees the same weights).
Expected<std::map<std::string, Tensor>> initialState(const Graph& g, uint64_t seed) {
  Interpreter interp(g);
  KILN_RETURN_IF_ERROR(interp.initializeParameters(seed));
  return interp.parameters();
}

}  // namespace

int runCompile(const std::vector<std::string>& args) {
  ArgParser p(
      "compile MODEL --mode infer|train -o DIR [options]",
      "Compiles a model ahead of time into DIR/NAME.o (an ELF object) and DIR/NAME.h (its\n"
      "C entry points, the names, dtypes and shapes of their tensors and state, the arena\n"
      "size formula, and a C++ wrapper class). Link the object with the runtime library:\n"
      "  g++ main.cpp DIR/NAME.o -I DIR -LKILN_BUILD/runtime -lkiln_runtime -lz -pthread\n"
      "  infer  NAME_predict\n"
      "  train  NAME_train_step (updates the state in place) and NAME_evaluate\n"
      "The weights come from --weights (a safetensors checkpoint, e.g. from kiln train) or\n"
      "from the model's initializers drawn from --seed; they are embedded in the object,\n"
      "or with --weights-external written to DIR/NAME.safetensors for the wrapper to read.");
  p.positional("MODEL", "A model file (layer-level) or an op-level graph (.pbtxt or .pb)");
  p.option("mode", "infer|train", "Which entry points to compile", "infer");
  p.option("output", "DIR", "The output directory (created if missing)");
  p.alias('o', "output");
  p.option("target", "TRIPLE", "x86_64-linux-gnu or aarch64-linux-gnu (default: the host)");
  p.option(
      "cpu", "NAME",
      "CPU to tune and select instructions for: native, x86-64-v2, x86-64-v3, "
      "x86-64-v4, skylake-avx512, cortex-a72, neoverse-n1, ... (default: the host's for the host "
      "triple, generic otherwise)");
  p.option("weights", "CKPT",
           "A safetensors checkpoint holding every parameter (default: initializers)");
  p.flag("weights-external", "Write the weights to DIR/NAME.safetensors instead of embedding them");
  p.option("seed", "N",
           "Seed of the initializers (default: a layer-level model's training.seed, else 0)");
  p.option("name", "NAME", "Symbol prefix and file name (default: the model's name)");
  p.option("opt-level", "N", "LLVM optimization level 0..3", "3");
  p.alias('O', "opt-level");
  p.flag("no-graph-passes",
         "Compile the graph as written: no passes (no cleanups, no batch-norm folding, no "
         "fuse-elementwise: one loop per op unless the graph has fusion_group attributes)");
  p.repeated("disable-pass", "NAME", "Skip this pass wherever the pipeline runs it");
  p.flag("time-passes", "Print the seconds each stage took");
  p.flag("emit-llvm", "Also write DIR/NAME.ll, the optimized LLVM IR the object is generated from");
  if (auto exit = p.parseOrExit(args)) return *exit;
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "%s\n", e.str().c_str());
    return 1;
  };
  const std::string path = p.positionals()[0];
  std::string mode = p.get("mode");
  if (mode != "infer" && mode != "train")
    return fail(Error::msg("kiln compile: --mode must be infer or train, found '" + mode + "'"));
  if (!p.has("output"))
    return fail(Error::msg("kiln compile: -o DIR is required (where NAME.o and NAME.h go)"));
  std::string level = p.get("opt-level");
  if (level.size() != 1 || level[0] < '0' || level[0] > '3')
    return fail(Error::msg("kiln compile: -O takes 0, 1, 2 or 3, found '" + level + "'"));
  codegen::AotOptions opts;
  opts.target.triple = p.get("target");
  opts.target.cpu = p.get("cpu");
  opts.target.optLevel = level[0] - '0';
  opts.externalWeights = p.has("weights-external");
  opts.emitLLVM = p.has("emit-llvm");
  opts.source = path;
  // A bad target fails before the model is loaded and compiled (cheap to check, common typo).
  if (auto tm = codegen::createTargetMachine(opts.target); !tm) return fail(tm.error());
  passes::PassManagerOptions pmo;
  for (const std::string& d : p.getAll("disable-pass")) pmo.disabled.insert(d);
  if (Status s = passes::PassManager(pmo).checkDisabled(); !s) return fail(s.error());

  auto start = std::chrono::steady_clock::now();
  std::string name;
  uint64_t seed = 0;
  std::vector<codegen::AotFunction> functions;
  // Graphs the functions point into; kept alive until compileAot returns.
  LoadedModel inferModel;
  TrainingModel trainModel;
  if (mode == "infer") {
    auto m = loadAnyModel(path, frontend::Expansion::Inference);
    if (!m) return fail(m.error());
    inferModel = std::move(*m);
    name = inferModel.model.name;
    if (inferModel.model.training) seed = inferModel.model.training->seed;
    functions.push_back({KILN_ENTRY_PREDICT, inferModel.model.graph.get(), false});
  } else {
    auto m = loadTrainingModel(path, /*freezeRegex=*/"", nullptr, nullptr);
    if (!m) return fail(m.error());
    trainModel = std::move(*m);
    name = trainModel.name;
    seed = trainModel.spec.seed;
    functions.push_back({KILN_ENTRY_TRAIN_STEP, trainModel.stepGraph.get(), true});
    functions.push_back({KILN_ENTRY_EVALUATE, trainModel.evalGraph.get(), false});
  }
  if (p.has("name")) name = p.get("name");
  try {
    if (p.has("seed")) seed = std::stoull(p.get("seed"));
  } catch (const std::exception&) {
    return fail(Error::msg("kiln compile: --seed takes a non-negative integer, found '" +
                           p.get("seed") + "'"));
  }

  std::map<std::string, Tensor> state;
  if (p.has("weights")) {
    auto c = readCheckpoint(p.get("weights"));
    if (!c) return fail(c.error());
    auto s = codegen::checkState(functions, c->tensors, p.get("weights"));
    if (!s) return fail(s.error());
    state = std::move(*s);
    opts.weightsOrigin = "checkpoint " + p.get("weights");
  } else {
    // Every function's parameters come from one initialization of the graph holding them all
    // (the training step's, in train mode).
    for (const codegen::AotFunction& f : functions) {
      auto s = initialState(*f.graph, seed);
      if (!s) return fail(s.error());
      state.merge(*s);
    }
    opts.weightsOrigin = "initializers, seed " + std::to_string(seed);
  }
  // Inference: the default pipeline (cleanups, batch norm folded into the matmuls), then the
  // parameter-only math (the folded weights) evaluated here once, so the object embeds W' and
  // never recomputes it. The checkpoint was checked against the model's own parameters above.
  std::unique_ptr<Graph> prepare;
  if (mode == "train" && !p.has("no-graph-passes")) {
    // The training step and evaluation stay the graphs kiln train and kiln build run (their state
    // layout is the checkpoint's); only the fusion groups are added.
    for (Graph* g : {trainModel.stepGraph.get(), trainModel.evalGraph.get()}) {
      passes::PassManager pm(pmo);
      passes::buildFusionPipeline(pm);
      if (auto r = pm.run(*g); !r) return fail(r.error());
    }
  }
  if (mode == "infer" && !p.has("no-graph-passes")) {
    Graph& g = *inferModel.model.graph;
    passes::PassManager pm(pmo);
    passes::buildInferencePipeline(pm);
    if (auto r = pm.run(g); !r) return fail(r.error());
    auto prep = passes::hoistParameterMath(g);
    if (!prep) return fail(prep.error());
    prepare = std::move(*prep);
    auto prepared = passes::prepareParameters(*prepare, g, state);
    if (!prepared) return fail(prepared.error());
    state = std::move(*prepared);
    opts.weightsOrigin += ", batch norm folded";
  }
  double graphSeconds = secondsSince(start);

  auto r = codegen::compileAot(name, functions, state, opts, p.get("output"));
  if (!r) return fail(r.error());
  std::printf("wrote %s (%lld bytes; %s, CPU %s) and %s\n", r->objectPath.c_str(),
              static_cast<long long>(r->objectBytes), r->target.triple.c_str(),
              r->target.cpu.c_str(), r->headerPath.c_str());
  std::printf("state: %lld tensors, %lld bytes, from %s, %s\n",
              static_cast<long long>(r->stateTensors), static_cast<long long>(r->stateBytes),
              opts.weightsOrigin.c_str(),
              opts.externalWeights ? ("in " + r->weightsPath).c_str() : "embedded in the object");
  if (!r->irPath.empty()) std::printf("wrote %s (optimized LLVM IR)\n", r->irPath.c_str());
  for (const auto& [entry, bytes] : r->arenaStaticAndPerBatch)
    std::printf("arena of %s: %lld + %lld * batch bytes\n", entry.c_str(),
                static_cast<long long>(bytes.first), static_cast<long long>(bytes.second));
  if (p.has("time-passes")) {
    std::string optimization = "LLVM optimization (O" + std::to_string(opts.target.optLevel) + ")";
    std::printf("%-52s %s\n", "stage", "seconds");
    const char* graphStage = mode == "train" ? "graph passes (load, training step, verify, weights)"
                             : p.has("no-graph-passes")
                                 ? "graph passes (load, verify, weights)"
                                 : "graph passes (load, verify, fold BN, weights)";
    std::printf("%-52s %.4f\n", graphStage, graphSeconds);
    std::printf("%-52s %.4f\n", "LLVM IR emission (schedule, memory plan)", r->times.irEmission);
    std::printf("%-52s %.4f\n", optimization.c_str(), r->times.optimization);
    std::printf("%-52s %.4f\n", "object emission", r->times.objectEmission);
  }
  return 0;
}

}  // namespace kiln::driver
