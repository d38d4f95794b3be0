// `kiln bench MODEL`: times a model's predictions in each compilation variant (reference
// interpreter; compiled without graph passes or codegen fusion; compiled with fusion; fusion plus
// batch-norm folding) at several batch sizes, and checks each compiled variant's outputs against
// the interpreter before timing it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>

#include "compiler/codegen/Jit.h"
#include "compiler/codegen/JitExecutor.h"
#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/interpreter/Interpreter.h"
#include "compiler/passes/Pass.h"
#include "compiler/passes/Prepare.h"
#include "compiler/training/TrainingGraph.h"
#include "ir/ProtoIO.h"
#include "ir/Verifier.h"

namespace kiln::driver {

namespace {

using Clock = std::chrono::steady_clock;

/// Per-call latencies of a measurement, in seconds.
struct Timing {
  double median = 0, p10 = 0, p90 = 0;
  int reps = 0;
};

/// Times the calls in interleaved rounds, so that load from other processes on a shared machine
/// hits every variant alike instead of whichever ran at that moment. Each round runs a block of
/// consecutive calls per variant (about 2 ms worth, at least 2) and records all but the block's
/// first, which refills the caches the other variants evicted: the figures are warm-cache
/// latencies, as a model serving a stream of requests sees. Warm-up: each call at least 3 times
/// and 50 ms. Then rounds until every call has 15 samples and 300 ms of timed calls (at most
/// 5000 samples).
std::vector<Timing> measureInterleaved(const std::vector<std::function<void()>>& calls) {
  auto since = [](Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  std::vector<int> block;
  for (const auto& call : calls) {
    Clock::time_point t0 = Clock::now();
    int n = 0;
    for (; n < 3 || since(t0) < 0.05; ++n) call();
    double perCall = since(t0) / n;
    block.push_back(static_cast<int>(std::clamp(0.002 / perCall, 2.0, 200.0)));
  }
  std::vector<std::vector<double>> samples(calls.size());
  std::vector<double> timed(calls.size(), 0.0);
  auto enough = [&] {
    for (size_t i = 0; i < calls.size(); ++i)
      if (samples[i].size() < 5000 && (samples[i].size() < 15 || timed[i] < 0.3)) return false;
    return true;
  };
  while (!enough())
    for (size_t i = 0; i < calls.size(); ++i)
      for (int k = 0; k < block[i]; ++k) {
        Clock::time_point a = Clock::now();
        calls[i]();
        double t = since(a);
        if (k == 0) continue;
        samples[i].push_back(t);
        timed[i] += t;
      }
  std::vector<Timing> out;
  for (std::vector<double>& v : samples) {
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<size_t>(q * double(v.size() - 1) + 0.5)]; };
    out.push_back({at(0.5), at(0.1), at(0.9), static_cast<int>(v.size())});
  }
  return out;
}

Tensor randomInput(const TensorType& t, int64_t batch, std::mt19937_64& rng) {
  Shape s = t.shape;
  for (int64_t& d : s)
    if (d < 0) d = batch;
  Tensor out(t.dtype, s);
  std::uniform_real_distribution<double> u(0, 1);  // Fashion-MNIST pixels are in [0, 1].
  for (int64_t i = 0; i < out.size(); ++i)
    out.setDouble(
        i, t.dtype == DType::Float32 || t.dtype == DType::Float64 ? u(rng) : double(rng() % 2));
  return out;
}

/// A graph variant ready to time: compiled code (or null for the interpreter), its graph and
/// the parameter values it reads.
struct Variant {
  std::string name;
  std::unique_ptr<Graph> graph, prepare;
  std::unique_ptr<codegen::JitGraph> jit;
  std::map<std::string, Tensor> params;
  double compileSeconds = 0;
  size_t nodes = 0;
  int loops = 0;  // loops/kernels the compiled code stores (fused groups count once)
};

std::vector<int64_t> parseSizes(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end || v <= 0) return {};
    out.push_back(v);
  }
  return out;
}

/// The largest |a - b| / (1 + |a|) over every output.
double maxRelDiff(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  double worst = 0;
  for (const auto& [name, ta] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.size() != ta.size()) return INFINITY;
    for (int64_t i = 0; i < ta.size(); ++i) {
      double x = ta.getDouble(i), y = it->second.getDouble(i);
      double d = std::abs(x - y) / (1 + std::abs(x));
      worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
  }
  return worst;
}

/// One table row (or JSON line). `speedup` <= 0 prints "-"; `compileSeconds` < 0 too.
void printRow(bool json, const std::string& model, const std::string& variant, int64_t batch,
              const Timing& t, double speedup, double compileSeconds, size_t nodes, int loops) {
  double perSecond = double(batch) / t.median;
  if (json) {
    std::printf(
        "{\"model\":\"%s\",\"variant\":\"%s\",\"batch\":%lld,\"median_s\":%.9g,\"p10_s\":%.9g,"
        "\"p90_s\":%.9g,\"reps\":%d,\"samples_per_s\":%.6g,\"speedup_vs_unfused\":%.4g,"
        "\"compile_s\":%.6g,\"nodes\":%zu,\"loops\":%d,\"threads\":%d}\n",
        model.c_str(), variant.c_str(), static_cast<long long>(batch), t.median, t.p10, t.p90,
        t.reps, perSecond, speedup, compileSeconds, nodes, loops, kiln_rt_get_num_threads());
  } else {
    char spread[64], speed[16] = "-", compile[16] = "-";
    std::snprintf(spread, sizeof spread, "%.2f-%.2f us", t.p10 * 1e6, t.p90 * 1e6);
    if (speedup > 0) std::snprintf(speed, sizeof speed, "%.2fx", speedup);
    if (compileSeconds >= 0)
      std::snprintf(compile, sizeof compile, "%.0f ms", compileSeconds * 1e3);
    std::printf("%-18s %6lld %10.2f us %20s %12.0f %9s %10s\n", variant.c_str(),
                static_cast<long long>(batch), t.median * 1e6, spread, perSecond, speed, compile);
  }
  std::fflush(stdout);
}

/// --mode train: one training step per call (each call updates the state, as training does).
/// Variants: the interpreter on the step as built; compiled without passes or elementwise
/// fusion; compiled after the training pipeline's clean-ups with fusion. Every variant starts from
/// the same initialized state and its first step's returned values (loss, metrics, rate) are
/// checked against the interpreter's before timing.
int benchTraining(const std::string& path, const std::vector<int64_t>& sizes, uint64_t seed,
                  bool json, const passes::PassManagerOptions& pmo) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "%s\n", e.str().c_str());
    return 1;
  };
  struct TrainVariant {
    std::string name;
    std::unique_ptr<Graph> graph;
    double compileSeconds = -1;
    std::unique_ptr<StepExecutor> exec;
  };
  std::vector<TrainVariant> variants;
  for (const char* name : {"interpreter", "unfused", "fused"}) {
    auto m = loadAnyModel(path, frontend::Expansion::Evaluation);
    if (!m) return fail(m.error());
    if (!m->model.training)
      return fail(Error::msg(path + ": --mode train needs a model file with a training block"));
    TrainVariant v;
    v.name = name;
    v.graph = std::move(m->model.graph);
    auto info = buildTrainingGraph(*v.graph, *m->model.training, {});
    if (!info) return fail(info.error());
    if (v.name == "interpreter") {
      v.exec = std::make_unique<InterpreterExecutor>(*v.graph, /*updatesState=*/true, seed);
    } else {
      Clock::time_point t0 = Clock::now();
      // unfused: no passes at all (no fusion_group attributes: one loop per op).
      if (v.name == "fused") {
        passes::PassManager pm(pmo);
        passes::buildTrainingPipeline(pm);
        if (auto r = pm.run(*v.graph); !r) return fail(r.error());
      }
      auto exec = codegen::JitExecutor::create(*v.graph, /*updatesState=*/true, seed);
      if (!exec) return fail(exec.error());
      v.exec = std::move(*exec);
      v.compileSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    variants.push_back(std::move(v));
  }
  const Graph& ref = *variants[0].graph;
  if (!json)
    std::printf(
        "%s training step: %zu nodes, %zu after the training pipeline; %d thread(s)\n"
        "%-18s %6s %13s %20s %12s %9s %10s\n",
        ref.name().c_str(), ref.nodes().size(), variants[2].graph->nodes().size(),
        kiln_rt_get_num_threads(), "variant", "batch", "median", "p10-p90", "samples/s", "speed-up",
        "compile");
  std::mt19937_64 rng(seed + 1);
  for (int64_t batch : sizes) {
    std::map<std::string, Tensor> inputs;
    for (Node* n : ref.inputs()) inputs[n->name()] = randomInput(n->result()->type(), batch, rng);
    std::map<std::string, Tensor> want;
    std::vector<std::function<void()>> calls;
    for (TrainVariant& v : variants) {
      if (Status s = v.exec->initialize(seed); !s) return fail(s.error());
      auto out = v.exec->run(inputs, /*step=*/0);
      if (!out) return fail(out.error());
      // The returned values only: the new state of rms-scaled optimizers turns float rounding of
      // near-zero gradients into lr-sized differences (CodegenTrainingTest checks the state).
      std::map<std::string, Tensor> returned;
      for (const GraphOutput& o : ref.outputs())
        if (!ref.findNode(o.name) || ref.findNode(o.name)->op() != OpKind::Parameter)
          returned[o.name] = out->at(o.name);
      if (want.empty()) {
        want = returned;
      } else if (double diff = maxRelDiff(want, returned); !(diff <= 1e-4)) {
        return fail(Error::msg("kiln bench: training variant '" + v.name +
                               "' disagrees with the interpreter at batch " +
                               std::to_string(batch) + ": max relative difference " +
                               std::to_string(diff)));
      }
      StepExecutor* exec = v.exec.get();
      calls.push_back([exec, &inputs] { (void)exec->run(inputs, /*step=*/0); });
    }
    // The interpreter is ~100x slower: timed on its own, the compiled variants interleaved.
    std::vector<Timing> t = measureInterleaved({calls[0]});
    std::vector<Timing> compiled = measureInterleaved({calls.begin() + 1, calls.end()});
    t.insert(t.end(), compiled.begin(), compiled.end());
    for (size_t i = 0; i < variants.size(); ++i)
      printRow(json, ref.name(), variants[i].name, batch, t[i], i ? t[1].median / t[i].median : 0,
               variants[i].compileSeconds, variants[i].graph->nodes().size(), 0);
  }
  return 0;
}

}  // namespace

int runBench(const std::vector<std::string>& args) {
  ArgParser p(
      "bench MODEL [--batch-sizes 1,64,256] [--threads N] [--mode infer|train] [--json]",
      "Times predictions of a model (random parameters from its initializers, random inputs)\n"
      "in each variant:\n"
      "  interpreter   the reference interpreter\n"
      "  unfused       compiled, no graph passes, every op its own loop over memory\n"
      "  fused         compiled with the clean-up passes and elementwise fusion\n"
      "  fused+folded  fused, plus batch-norm folding; folded weights are computed once\n"
      "                at load time by the prepare graph, not timed\n"
      "Each compiled variant's outputs are checked against the interpreter first. Prints the\n"
      "median latency per call (p10-p90 spread), samples/s, speed-up over 'unfused' and\n"
      "compile time. --mode train times one training step per call (state updated in place):\n"
      "the interpreter, the compiled step without passes or fusion ('unfused'), and compiled\n"
      "after the training pipeline with fusion ('fused').");
  p.positional("MODEL", "A model file (layer-level) or an op-level graph (.pbtxt or .pb)");
  p.option("batch-sizes", "N,N,...", "Batch sizes to time", "1,64,256");
  p.option("threads", "N",
           "Threads of the runtime's kernels in compiled code (the interpreter uses one)", "1");
  p.option("mode", "infer|train", "What to time: predictions, or training steps", "infer");
  p.option("seed", "N", "Seed of the parameters and inputs", "1");
  p.flag("json", "Print JSON lines instead of a table");
  p.repeated("disable-pass", "NAME",
             "Skip this pass in the compiled variants (fuse-elementwise: 'fused' compiles one "
             "loop per op, as 'unfused' does)");
  if (auto exit = p.parseOrExit(args)) return *exit;
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "%s\n", e.str().c_str());
    return 1;
  };
  std::vector<int64_t> sizes = parseSizes(p.get("batch-sizes"));
  if (sizes.empty())
    return fail(Error::msg(
        "kiln bench: --batch-sizes takes positive integers separated by commas, found '" +
        p.get("batch-sizes") + "'"));
  const std::string threadsText = p.get("threads");  // get() returns a copy: keep it alive
  char* threadsEnd = nullptr;
  long threads = std::strtol(threadsText.c_str(), &threadsEnd, 10);
  if (threadsText.empty() || *threadsEnd || threads < 1 || threads > 256)
    return fail(Error::msg("kiln bench: --threads takes an integer from 1 to 256, found '" +
                           p.get("threads") + "'"));
  kiln_rt_set_num_threads(static_cast<int>(threads));
  if (p.get("mode") != "infer" && p.get("mode") != "train")
    return fail(
        Error::msg("kiln bench: --mode must be infer or train, found '" + p.get("mode") + "'"));
  const bool json = p.has("json");
  uint64_t seed = std::strtoull(p.get("seed").c_str(), nullptr, 10);

  passes::PassManagerOptions pmo;
  for (const std::string& d : p.getAll("disable-pass")) pmo.disabled.insert(d);
  if (Status s = passes::PassManager(pmo).checkDisabled(); !s) return fail(s.error());

  if (p.get("mode") == "train") return benchTraining(p.positionals()[0], sizes, seed, json, pmo);

  auto load = [&]() { return loadModel(p.positionals()[0]); };
  auto base = load();
  if (!base) return fail(base.error());
  Interpreter init(**base);
  if (Status s = init.initializeParameters(seed); !s) return fail(s.error());
  const std::map<std::string, Tensor> params = init.parameters();

  // The variants.
  std::vector<Variant> variants;
  {
    Variant v;
    v.name = "interpreter";
    v.graph = std::move(*base);
    v.params = params;
    v.nodes = v.graph->nodes().size();
    variants.push_back(std::move(v));
  }
  // unfused runs no pass (so no fuse-elementwise: one loop per op); fused the clean-ups and
  // fuse-elementwise; fused+folded the inference pipeline (which ends with fuse-elementwise).
  struct Spec {
    const char* name;
    bool fuse, cleanups, fold;
  };
  for (Spec s : {Spec{"unfused", false, false, false}, Spec{"fused", true, true, false},
                 Spec{"fused+folded", true, true, true}}) {
    Variant v;
    v.name = s.name;
    auto g = load();
    if (!g) return fail(g.error());
    v.graph = std::move(*g);
    Clock::time_point t0 = Clock::now();
    passes::PassManager pm(pmo);
    if (s.fold)
      passes::buildInferencePipeline(pm);
    else if (s.cleanups)
      passes::addCleanups(pm);
    if (s.fuse && !s.fold) passes::buildFusionPipeline(pm);
    if (auto r = pm.run(*v.graph); !r) return fail(r.error());
    v.params = params;
    if (s.fold) {
      auto prep = passes::hoistParameterMath(*v.graph);
      if (!prep) return fail(prep.error());
      v.prepare = std::move(*prep);
      auto pv = passes::prepareParameters(*v.prepare, *v.graph, params);
      if (!pv) return fail(pv.error());
      v.params = std::move(*pv);
    }
    double passSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
    auto jit = codegen::JitGraph::compile(*v.graph);
    if (!jit) return fail(jit.error());
    v.jit = std::move(*jit);
    v.compileSeconds = passSeconds + v.jit->compileSeconds();
    v.nodes = v.graph->nodes().size();
    v.loops = v.jit->storedNodes();
    variants.push_back(std::move(v));
  }

  const Graph& ref = *variants[0].graph;
  std::mt19937_64 rng(seed + 1);
  if (!json)
    std::printf(
        "%s: %zu nodes (after passes: %zu fused, %zu folded); stored loops: %d unfused, %d fused, "
        "%d folded; %d thread(s)\n"
        "%-18s %6s %13s %20s %12s %9s %10s\n",
        ref.name().c_str(), variants[0].nodes, variants[2].nodes, variants[3].nodes,
        variants[1].loops, variants[2].loops, variants[3].loops, kiln_rt_get_num_threads(),
        "variant", "batch", "median", "p10-p90", "samples/s", "speed-up", "compile");
  for (int64_t batch : sizes) {
    std::map<std::string, Tensor> inputs;
    for (Node* n : ref.inputs()) inputs[n->name()] = randomInput(n->result()->type(), batch, rng);
    Interpreter oracle(ref);
    for (auto& [k, t] : params)
      if (Status s = oracle.setParameter(k, t); !s) return fail(s.error());
    auto want = oracle.run(inputs);
    if (!want) return fail(want.error());
    // Raw ABI calls on buffers made once, so the timing holds no allocation.
    struct Runner {
      std::vector<const void*> in;
      std::vector<void*> ps, outs;
      std::vector<Tensor> outTensors;
      std::unique_ptr<void, decltype(&std::free)> arena{nullptr, &std::free};
      std::unique_ptr<Interpreter> interp;
      int32_t lastStatus = 0;
    };
    std::vector<std::unique_ptr<Runner>> runners;
    std::vector<std::function<void()>> calls;
    for (Variant& v : variants) {
      runners.push_back(std::make_unique<Runner>());
      Runner& r = *runners.back();
      if (!v.jit) {
        r.interp = std::make_unique<Interpreter>(*v.graph);
        for (auto& [k, t] : v.params)
          if (Status s = r.interp->setParameter(k, t); !s) return fail(s.error());
        calls.push_back([&r, &inputs] { (void)r.interp->run(inputs); });
        continue;
      }
      auto got = v.jit->run(inputs, v.params);
      if (!got) return fail(got.error());
      double diff = maxRelDiff(*want, *got);
      if (!(diff <= 1e-4))
        return fail(Error::msg(
            "kiln bench: variant '" + v.name + "' disagrees with the interpreter at batch " +
            std::to_string(batch) + ": max relative difference " + std::to_string(diff)));
      for (Node* n : v.graph->inputs()) r.in.push_back(inputs.at(n->name()).raw());
      for (Node* q : v.graph->parameters()) r.ps.push_back(v.params.at(q->name()).raw());
      for (const GraphOutput& o : v.graph->outputs())
        r.outTensors.emplace_back(o.value->type().dtype, bindBatch(o.value->type().shape, batch));
      for (Tensor& t : r.outTensors) r.outs.push_back(t.raw());
      int64_t bytes = v.jit->arenaSize(batch);
      size_t alloc = static_cast<size_t>((bytes + KILN_ARENA_ALIGNMENT) / KILN_ARENA_ALIGNMENT *
                                         KILN_ARENA_ALIGNMENT);
      r.arena.reset(std::aligned_alloc(KILN_ARENA_ALIGNMENT, alloc));
      const codegen::JitGraph* jit = v.jit.get();
      calls.push_back([&r, jit, batch] {
        r.lastStatus = jit->call(batch, r.in.data(), r.outs.data(), r.ps.data(), r.arena.get());
      });
    }
    // The interpreter is only a reference and ~100x slower: timed on its own, so the compiled
    // variants' rounds stay short.
    std::vector<Timing> timings = measureInterleaved({calls[0]});
    std::vector<Timing> compiled = measureInterleaved({calls.begin() + 1, calls.end()});
    timings.insert(timings.end(), compiled.begin(), compiled.end());
    double unfusedMedian = 0;
    for (size_t i = 0; i < variants.size(); ++i) {
      const Variant& v = variants[i];
      const Timing& t = timings[i];
      if (runners[i]->lastStatus != 0)
        return fail(Error::msg("kiln bench: " + v.name + ": " +
                               v.jit->statusMessage(runners[i]->lastStatus)));
      if (v.name == "unfused") unfusedMedian = t.median;
      double speedup = unfusedMedian > 0 && v.jit ? unfusedMedian / t.median : 0;
      printRow(json, ref.name(), v.name, batch, t, v.jit ? speedup : 0,
               v.jit ? v.compileSeconds : -1, v.nodes, v.loops);
    }
  }
  return 0;
}

}  // namespace kiln::driver
