// Kernel benchmarks: the machine's FP32 FMA peak per core, the runtime's matmul at fashion_mlp's
// shapes (forward and backward) with 1 and 2 threads, and the JIT's inline transcendental loops.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "benchmarks/FmaPeak.h"
#include "compiler/codegen/Jit.h"
#include "ir/Builder.h"
#include "ir/Verifier.h"
#include "runtime/KilnABI.h"

namespace kiln::bench {
namespace {

// ---- FP32 peak ---------------------------------------------------------------------------------

void BM_FmaPeak(benchmark::State& state) {
  constexpr int64_t kRounds = 1 << 20;
  double flops = 0, total = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fmaLoop(kRounds, &flops));
    total += flops;
  }
  state.counters["FLOP/s"] = benchmark::Counter(total, benchmark::Counter::kIsRate);
  state.SetLabel(fmaIsa());
}
BENCHMARK(BM_FmaPeak)->Unit(benchmark::kMillisecond);

// ---- Matmul ------------------------------------------------------------------------------------

std::vector<float> randomFloats(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

/// Args: m, n, k, transpose A, transpose B, threads. C = op(A) op(B), beta = 0.
void BM_Matmul(benchmark::State& state) {
  int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  bool ta = state.range(3) != 0, tb = state.range(4) != 0;
  kiln_rt_set_num_threads(static_cast<int>(state.range(5)));
  std::vector<float> a = randomFloats(m * k, 1), b = randomFloats(k * n, 2), c(size_t(m * n));
  int64_t lda = ta ? m : k, ldb = tb ? k : n;
  for (auto _ : state) {
    kiln_rt_matmul_f32(m, n, k, a.data(), lda, ta, b.data(), ldb, tb, c.data(), n, 1.0f, 0.0f);
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(m * n * k), benchmark::Counter::kIsIterationInvariantRate);
  kiln_rt_set_num_threads(0);
}

/// fashion_mlp's products: y = x W for each layer at batch 1, 64, 200 and 256, and at the
/// training batch 200 the backward ones, dW = x^T dy (A transposed) and dx = dy W^T (B
/// transposed); deep_selu's at batch 256; each with 1 and 2 threads.
void matmulShapes(benchmark::internal::Benchmark* b) {
  const int64_t layers[3][2] = {{784, 300}, {300, 100}, {100, 10}};
  for (int threads : {1, 2}) {
    for (int64_t batch : {1, 64, 200, 256})
      for (auto [in, out] : layers) b->Args({batch, out, in, 0, 0, threads});
    for (auto [in, out] : layers) {
      b->Args({in, out, 200, 1, 0, threads});
      b->Args({200, in, out, 0, 1, threads});
    }
    // deep_selu's hidden layers at batch 256: forward, weight gradient, input gradient; and its
    // first layer's forward and weight gradient.
    b->Args({256, 100, 100, 0, 0, threads});
    b->Args({100, 100, 256, 1, 0, threads});
    b->Args({256, 100, 100, 0, 1, threads});
    b->Args({256, 100, 784, 0, 0, threads});
    b->Args({784, 100, 256, 1, 0, threads});
  }
}
BENCHMARK(BM_Matmul)
    ->ArgNames({"m", "n", "k", "ta", "tb", "threads"})
    ->Apply(matmulShapes)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- Matmul with an epilogue -------------------------------------------------------------------

/// A dense layer's epilogue: y = relu(c + bias) over rows [r0, r1) of the product.
struct BiasRelu {
  const float* c;
  const float* bias;
  float* y;
  int64_t n;
  static void run(int64_t r0, int64_t r1, void* ctx) {
    auto* e = static_cast<const BiasRelu*>(ctx);
    for (int64_t i = r0; i < r1; ++i) {
      const float* ci = e->c + i * e->n;
      float* yi = e->y + i * e->n;
      for (int64_t j = 0; j < e->n; ++j) yi[j] = std::max(ci[j] + e->bias[j], 0.0f);
    }
  }
};

/// Args: m, n, k, threads, variant, block rows. Variant 0: kiln_rt_matmul_f32, then bias + ReLU
/// in a second pass over C (what a fused epilogue in one block costs); 1:
/// kiln_rt_matmul_f32_blocked with the epilogue on each block of rows (block rows 0: the
/// runtime's choice).
void BM_MatmulEpilogue(benchmark::State& state) {
  int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  kiln_rt_set_num_threads(static_cast<int>(state.range(3)));
  bool blocked = state.range(4) != 0;
  int64_t blockRows = state.range(5);
  std::vector<float> a = randomFloats(m * k, 1), b = randomFloats(k * n, 2),
                     bias = randomFloats(n, 3);
  std::vector<float> c(size_t(m * n)), y(size_t(m * n));
  BiasRelu e{c.data(), bias.data(), y.data(), n};
  for (auto _ : state) {
    if (blocked) {
      kiln_rt_matmul_f32_blocked(m, n, k, a.data(), k, 0, b.data(), n, 0, c.data(), n, blockRows,
                                 &BiasRelu::run, &e);
    } else {
      kiln_rt_matmul_f32(m, n, k, a.data(), k, 0, b.data(), n, 0, c.data(), n, 1.0f, 0.0f);
      BiasRelu::run(0, m, &e);
    }
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(m * n * k), benchmark::Counter::kIsIterationInvariantRate);
  kiln_rt_set_num_threads(0);
}

/// fashion_mlp's forward layers at batch 64, 200 and 256 and deep_selu's 100 x 100 hidden layers at
/// batch 64, 256 and 1024: the two-pass baseline, the blocked kernel with the runtime's block
/// size, and (1 thread, the largest product) a sweep of block sizes.
void epilogueShapes(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][3] = {{256, 300, 784}, {200, 300, 784}, {64, 300, 784}, {256, 100, 300},
                               {200, 100, 300}, {64, 100, 300},  {64, 10, 100},  {64, 100, 100},
                               {256, 100, 100}, {1024, 100, 100}};
  for (int threads : {1, 2})
    for (auto [m, n, k] : shapes) {
      b->Args({m, n, k, threads, 0, 0});
      b->Args({m, n, k, threads, 1, 0});
    }
  for (int64_t rows : {8, 16, 32, 64, 128, 256}) {
    b->Args({256, 300, 784, 1, 1, rows});
    b->Args({1024, 100, 100, 1, 1, rows});
  }
}
BENCHMARK(BM_MatmulEpilogue)
    ->ArgNames({"m", "n", "k", "threads", "blocked", "rows"})
    ->Apply(epilogueShapes)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- Inline transcendentals ----------------------------------------------------------------------

/// A JIT-compiled graph y = op(x) over x float32[-1, 1024].
struct UnaryLoop {
  std::unique_ptr<Graph> graph;
  std::unique_ptr<codegen::JitGraph> jit;
};

UnaryLoop compileUnary(OpKind op) {
  UnaryLoop u;
  u.graph = std::make_unique<Graph>("unary");
  Builder b(*u.graph);
  u.graph->addOutput("y", b.op(op, {b.input("x", DType::Float32, {-1, 1024})}));
  Status s = b.ok() ? verifyGraph(*u.graph) : b.status();
  if (!s) {
    std::fprintf(stderr, "kiln_bench_kernels: %s\n", s.error().str().c_str());
    std::exit(1);
  }
  auto jit = codegen::JitGraph::compile(*u.graph);
  if (!jit) {
    std::fprintf(stderr, "kiln_bench_kernels: %s\n", jit.error().str().c_str());
    std::exit(1);
  }
  u.jit = std::move(*jit);
  return u;
}

/// 1M floats (batch 1024 x 1024) in [-8, 8], through one compiled elementwise loop. The
/// counter counts bytes read and written.
void BM_Transcendental(benchmark::State& state, OpKind op) {
  UnaryLoop u = compileUnary(op);
  constexpr int64_t kBatch = 1024, kElements = kBatch * 1024;
  std::vector<float> x = randomFloats(kElements, 3), y(static_cast<size_t>(kElements));
  for (float& v : x) v *= 8.0f;
  std::vector<unsigned char> arena(static_cast<size_t>(u.jit->arenaSize(kBatch) + 64));
  void* arenaPtr = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arena.data()) + 63) / 64 * 64);
  const void* in[] = {x.data()};
  void* out[] = {y.data()};
  for (auto _ : state) {
    if (u.jit->call(kBatch, in, out, nullptr, arenaPtr) != 0) state.SkipWithError("predict failed");
    benchmark::ClobberMemory();
  }
  state.counters["B/s"] = benchmark::Counter(double(kElements) * 2 * sizeof(float),
                                             benchmark::Counter::kIsIterationInvariantRate);
  state.counters["elements/s"] =
      benchmark::Counter(double(kElements), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(BM_Transcendental, exp, OpKind::Exp)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Transcendental, tanh, OpKind::Tanh)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Transcendental, erf, OpKind::Erf)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Transcendental, sigmoid, OpKind::Sigmoid)->Unit(benchmark::kMicrosecond);
// The same loop's memory traffic alone, for scale: a copy through an elementwise op that is
// nearly free (negation).
BENCHMARK_CAPTURE(BM_Transcendental, neg, OpKind::Neg)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kiln::bench

BENCHMARK_MAIN();
