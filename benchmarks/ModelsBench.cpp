// Model benchmarks: fashion_mlp's prediction at batch 1, 64 and 256 on the reference interpreter
// and through the JIT with 1 and 2 runtime threads, the time to compile the graph, and one
// training step at batch 200 (the model's own SGD recipe) on both.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "compiler/codegen/Jit.h"
#include "compiler/codegen/JitExecutor.h"
#include "compiler/training/StepExecutor.h"
#include "compiler/training/Trainer.h"
#include "compiler/interpreter/Interpreter.h"
#include "compiler/passes/Pass.h"
#include "ir/ProtoIO.h"
#include "ir/Verifier.h"
#include "runtime/KilnABI.h"

namespace kiln::bench {
namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "kiln_bench_models: %s\n", what.c_str());
  std::exit(1);
}

/// Groups the graph's elementwise chains as every compiling command does (the fuse-elementwise
/// pass; without it the code generator stores every intermediate).
void fuse(Graph& g) {
  passes::PassManager pm;
  passes::buildFusionPipeline(pm);
  if (auto changed = pm.run(g); !changed) fail(changed.error().str());
}

/// fashion_mlp's inference graph (examples/fashion_mlp), its parameters from their initializers
/// (seed 42) and its compiled form, built once for every benchmark.
struct FashionMlp {
  std::unique_ptr<Graph> graph;
  std::unique_ptr<Interpreter> interp;
  std::unique_ptr<codegen::JitGraph> jit;
  std::vector<void*> params;

  static FashionMlp& get() {
    static FashionMlp m = load();
    return m;
  }

 private:
  static FashionMlp load() {
    FashionMlp m;
    auto g = readGraphFile(std::string(KILN_SOURCE_DIR) + "/examples/fashion_mlp/fashion_mlp.graph.pbtxt");
    if (!g) fail(g.error().str());
    m.graph = std::move(*g);
    if (Status s = verifyGraph(*m.graph); !s) fail(s.error().str());
    fuse(*m.graph);
    m.interp = std::make_unique<Interpreter>(*m.graph);
    if (Status s = m.interp->initializeParameters(/*seed=*/42); !s) fail(s.error().str());
    auto jit = codegen::JitGraph::compile(*m.graph);
    if (!jit) fail(jit.error().str());
    m.jit = std::move(*jit);
    for (Node* p : m.graph->parameters())
      m.params.push_back(const_cast<void*>(m.interp->parameter(p->name())->raw()));
    return m;
  }
};

Tensor randomImages(int64_t batch) {
  Tensor x(DType::Float32, {batch, 784});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  float* d = x.data<float>();
  for (int64_t i = 0; i < x.size(); ++i) d[i] = u(rng);
  return x;
}

void setRates(benchmark::State& state, int64_t batch) {
  state.counters["samples/s"] =
      benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}

/// Args: batch. The interpreter allocates its tensors per run, as it always does; its matrix
/// products are Eigen's, single-threaded whatever the runtime's thread count.
void BM_FashionMlpPredictInterpreter(benchmark::State& state) {
  FashionMlp& m = FashionMlp::get();
  int64_t batch = state.range(0);
  std::map<std::string, Tensor> inputs{{"x", randomImages(batch)}};
  for (auto _ : state) {
    auto out = m.interp->run(inputs);
    if (!out) {
      state.SkipWithError(out.error().str().c_str());
      break;
    }
    benchmark::DoNotOptimize(out->at("logits").raw());
  }
  setRates(state, batch);
}
BENCHMARK(BM_FashionMlpPredictInterpreter)
    ->ArgNames({"batch"})
    ->Arg(1)->Arg(64)->Arg(256)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

/// Args: batch, threads. The raw entry point on preallocated inputs, outputs and arena, as an
/// application calls it; one untimed call first grows the workers' workspaces.
void BM_FashionMlpPredictJit(benchmark::State& state) {
  FashionMlp& m = FashionMlp::get();
  int64_t batch = state.range(0);
  kiln_rt_set_num_threads(static_cast<int>(state.range(1)));
  Tensor x = randomImages(batch), y(DType::Float32, {batch, 10});
  std::vector<unsigned char> arena(static_cast<size_t>(m.jit->arenaSize(batch) + 64));
  void* arenaPtr = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arena.data()) + 63) / 64 * 64);
  const void* in[] = {x.raw()};
  void* out[] = {y.raw()};
  if (m.jit->call(batch, in, out, m.params.data(), arenaPtr) != 0) fail("predict failed");
  for (auto _ : state) {
    benchmark::DoNotOptimize(m.jit->call(batch, in, out, m.params.data(), arenaPtr));
    benchmark::ClobberMemory();
  }
  setRates(state, batch);
  state.counters["compile_ms"] = m.jit->compileSeconds() * 1e3;
  kiln_rt_set_num_threads(0);
}
BENCHMARK(BM_FashionMlpPredictJit)
    ->ArgNames({"batch", "threads"})
    ->ArgsProduct({{1, 64, 256}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

/// Lowering, LLVM optimization at O3 and machine-code generation of the prediction graph.
void BM_FashionMlpCompile(benchmark::State& state) {
  FashionMlp& m = FashionMlp::get();
  for (auto _ : state) {
    auto jit = codegen::JitGraph::compile(*m.graph);
    if (!jit) {
      state.SkipWithError(jit.error().str().c_str());
      break;
    }
    benchmark::DoNotOptimize(jit->get());
  }
}
BENCHMARK(BM_FashionMlpCompile)->Unit(benchmark::kMillisecond)->Iterations(5);

// ---- Training step ------------------------------------------------------------------------------

/// fashion_mlp's training-step graph (examples/fashion_mlp/fashion_mlp.model.pbtxt: forward in
/// training mode, loss, gradients, SGD updates, batch-norm moving averages) and a batch of 200
/// random images and labels.
struct FashionMlpStep {
  TrainingModel model;
  std::map<std::string, Tensor> inputs;

  static FashionMlpStep& get() {
    static FashionMlpStep s = load();
    return s;
  }

 private:
  static FashionMlpStep load() {
    FashionMlpStep s;
    auto m = loadTrainingModel(std::string(KILN_SOURCE_DIR) + "/examples/fashion_mlp/fashion_mlp.model.pbtxt",
                               /*freezeRegex=*/"", nullptr,
                               [](const frontend::TrainingSpec&) { return int64_t{1000}; });
    if (!m) fail(m.error().str());
    s.model = std::move(*m);
    fuse(*s.model.stepGraph);  // as kiln train compiles it
    std::mt19937 rng(11);
    for (Node* in : s.model.stepGraph->inputs()) {
      const TensorType& t = in->result()->type();
      Shape shape = t.shape;
      for (int64_t& d : shape)
        if (d == -1) d = 200;
      Tensor x(t.dtype, shape);
      // Pixels in [0, 1); labels (integer inputs) among the 10 classes.
      std::uniform_real_distribution<double> u(0.0, 1.0);
      for (int64_t i = 0; i < x.size(); ++i)
        x.setDouble(i, isFloat(t.dtype) ? u(rng) : double(rng() % 10));
      s.inputs[in->name()] = std::move(x);
    }
    return s;
  }
};

/// One step through the StepExecutor interface, as kiln train runs it: inputs and returned
/// outputs (loss, metrics) as tensors, state updated in place. Args: threads (JIT only).
void runSteps(benchmark::State& state, StepExecutor& exec) {
  FashionMlpStep& s = FashionMlpStep::get();
  if (Status st = exec.initialize(/*seed=*/42); !st) fail(st.error().str());
  int64_t step = 0;
  if (auto warm = exec.run(s.inputs, step++); !warm) fail(warm.error().str());
  for (auto _ : state) {
    auto out = exec.run(s.inputs, step++);
    if (!out) {
      state.SkipWithError(out.error().str().c_str());
      break;
    }
    benchmark::DoNotOptimize(out->at("loss").raw());
  }
  setRates(state, 200);
}

void BM_FashionMlpTrainStepInterpreter(benchmark::State& state) {
  InterpreterExecutor exec(*FashionMlpStep::get().model.stepGraph, /*updatesState=*/true, /*seed=*/1);
  runSteps(state, exec);
}
BENCHMARK(BM_FashionMlpTrainStepInterpreter)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_FashionMlpTrainStepJit(benchmark::State& state) {
  kiln_rt_set_num_threads(static_cast<int>(state.range(0)));
  auto exec = codegen::JitExecutor::create(*FashionMlpStep::get().model.stepGraph,
                                           /*updatesState=*/true, /*seed=*/1);
  if (!exec) fail(exec.error().str());
  runSteps(state, **exec);
  state.counters["compile_ms"] = (*exec)->compiled().compileSeconds() * 1e3;
  kiln_rt_set_num_threads(0);
}
BENCHMARK(BM_FashionMlpTrainStepJit)
    ->ArgNames({"threads"})
    ->Arg(1)->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace kiln::bench

BENCHMARK_MAIN();
