// The example models through the JIT against the interpreter (batch 1 and 7), the static memory
// plan's reuse, and a prediction that makes no heap allocation.
#include <gtest/gtest.h>

#include <filesystem>

#include "CodegenTestUtil.h"
#include "compiler/codegen/JitExecutor.h"
#include "compiler/training/Trainer.h"
#include "frontend/Expand.h"
#include "ir/Builder.h"

// Counts heap allocations while `gCounting` is set, passing every call through to glibc's
// allocator (operator new and Eigen both end in malloc). Not under AddressSanitizer, which owns
// malloc itself.
#if !defined(__SANITIZE_ADDRESS__)
#define KILN_COUNT_MALLOC 1
namespace {
bool gCounting = false;
int gAllocations = 0;
// The first counted allocation: its size and whether the counting thread made it (to tell the
// code under test from another thread of the process), for the failure message.
size_t gFirstSize = 0;
bool gFirstOnCaller = false;
thread_local bool tIsCaller = false;
inline void countAllocation(size_t n) {
  if (!gCounting) return;
  if (gAllocations++ == 0) gFirstSize = n, gFirstOnCaller = tIsCaller;
}
}  // namespace
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) {
  countAllocation(n);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t s) {
  countAllocation(n * s);
  return __libc_calloc(n, s);
}
void* realloc(void* p, size_t n) {
  countAllocation(n);
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t a, size_t n) {
  countAllocation(n);
  return __libc_memalign(a, n);
}
int posix_memalign(void** p, size_t a, size_t n) {
  countAllocation(n);
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;  // ENOMEM
}
}
#endif

namespace kiln {
namespace {

std::vector<std::string> modelFiles() {
  std::vector<std::string> files;
  for (const auto& dir : std::filesystem::directory_iterator(test::sourcePath("examples")))
    for (const auto& f : std::filesystem::directory_iterator(dir.path()))
      if (f.path().string().ends_with(".model.pbtxt")) files.push_back(f.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// Matmuls accumulate in float32 (Eigen) and the ELUs use the inline expm1: 2e-5 after three
// dense layers of up to 784 inputs.
constexpr double kModelTolerance = 2e-5;

TEST(CodegenModels, FashionMlpGraphMatchesInterpreter) {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(g) << g.error().str();
  double err = test::expectMatchesInterpreter(**g, kModelTolerance, {{"x", {.floatScale = 1.0}}});
  RecordProperty("max_scaled_error", std::to_string(err));
}

TEST(CodegenModels, LayerModelsInInferenceAndEvaluationForm) {
  std::vector<std::string> files = modelFiles();
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    auto m = frontend::loadModelFile(f, frontend::Expansion::Inference);
    ASSERT_TRUE(m) << m.error().str();
    test::expectMatchesInterpreter(*m->graph, kModelTolerance, {{m->input->name(), {.floatScale = 1.0}}},
                                   {1, 7}, /*seed=*/1, /*useInitializers=*/true);
    if (!m->training) continue;
    // The evaluation form adds labels, the loss and the metrics.
    auto e = frontend::loadModelFile(f, frontend::Expansion::Evaluation);
    ASSERT_TRUE(e) << e.error().str();
    int64_t classes = e->graph->outputs().front().value->type().shape.back();
    test::expectMatchesInterpreter(*e->graph, kModelTolerance,
                                   {{e->input->name(), {.floatScale = 1.0}}, {"labels", {.intLo = 0, .intHi = classes - 1}}},
                                   {1, 7}, /*seed=*/1, /*useInitializers=*/true);
  }
}

TEST(CodegenModels, FusionAndArenaReuse) {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(g) << g.error().str();
  ASSERT_TRUE(verifyGraph(**g));
  test::fuse(**g);
  auto jit = codegen::JitGraph::compile(**g);
  ASSERT_TRUE(jit) << jit.error().str();
  // matmul, then bias + batch norm + ELU in one loop, per layer; the last layer's loop writes
  // the output: 6 stored nodes for 14 compute nodes.
  EXPECT_EQ((*jit)->storedNodes(), 6);
  const codegen::MemoryPlan& p = (*jit)->memoryPlan();
  // Intermediates: 3 matmul results and 2 fused activations, per batch row 300+300+100+100+10
  // floats without reuse; with reuse hidden1's matmul buffer is reused later.
  EXPECT_EQ(p.arenaSizeNoReuse(1), (1216 + 1216 + 448 + 448 + 64));
  EXPECT_LT(p.arenaSize(256), p.arenaSizeNoReuse(256));
  std::printf("fashion_mlp arena at batch 256: %lld bytes with reuse, %lld without\n",
              static_cast<long long>(p.arenaSize(256)), static_cast<long long>(p.arenaSizeNoReuse(256)));
  RecordProperty("arena_bytes_batch256", std::to_string(p.arenaSize(256)));
  RecordProperty("arena_bytes_batch256_no_reuse", std::to_string(p.arenaSizeNoReuse(256)));
  // Buffers alive at the same step never overlap.
  for (const auto& a : p.slots)
    for (const auto& b : p.slots) {
      if (&a == &b || a.perBatch != b.perBatch) continue;
      bool together = a.firstStep <= b.lastStep && b.firstStep <= a.lastStep;
      bool overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      EXPECT_FALSE(together && overlap) << a.value->name() << " and " << b.value->name();
    }
}

#ifdef KILN_COUNT_MALLOC
TEST(CodegenModels, PredictionMakesNoHeapAllocation) {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(g) << g.error().str();
  ASSERT_TRUE(verifyGraph(**g));
  test::fuse(**g);
  auto jit = codegen::JitGraph::compile(**g);
  ASSERT_TRUE(jit) << jit.error().str();
  Interpreter interp(**g);
  ASSERT_TRUE(interp.initializeParameters(/*seed=*/3));
  std::vector<void*> params;
  for (Node* p : (*g)->parameters()) params.push_back(const_cast<void*>(interp.parameter(p->name())->raw()));
  // With 2 threads the products at batch 64 and 256 run on the runtime's pool: its workers and
  // their workspaces start in the warm-up call, and the loops allocate nothing after that.
  int savedThreads = kiln_rt_get_num_threads();
  for (int threads : {1, 2})
  for (int64_t batch : {1, 64, 256}) {
    kiln_rt_set_num_threads(threads);
    Tensor x(DType::Float32, {batch, 784}), y(DType::Float32, {batch, 10});
    std::vector<unsigned char> arenaBytes(static_cast<size_t>((*jit)->arenaSize(batch) + 64));
    void* arena = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arenaBytes.data()) + 63) / 64 * 64);
    const void* in[] = {x.raw()};
    void* out[] = {y.raw()};
    ASSERT_EQ((*jit)->call(batch, in, out, params.data(), arena), 0);  // warms the workspace
    gAllocations = 0;
    tIsCaller = true;
    gCounting = true;
    int32_t status = (*jit)->call(batch, in, out, params.data(), arena);
    gCounting = false;
    EXPECT_EQ(status, 0);
    EXPECT_EQ(gAllocations, 0) << "heap allocations in a prediction at batch " << batch << " with "
                               << threads << " threads; the first of " << gFirstSize << " bytes on "
                               << (gFirstOnCaller ? "the calling thread" : "another thread");
  }
  kiln_rt_set_num_threads(savedThreads);
}

// A compiled training step (batch norm statistics, gradients, SGD, state written back into the
// parameters) allocates nothing either.
TEST(CodegenModels, TrainingStepMakesNoHeapAllocation) {
  for (const char* model : {"examples/fashion_mlp/fashion_mlp.model.pbtxt",
                            "examples/fashion_regularized/fashion_regularized.model.pbtxt"}) {
    auto m = loadTrainingModel(test::sourcePath(model), "", nullptr, nullptr);
    ASSERT_TRUE(m) << m.error().str();
    test::fuse(*m->stepGraph);
    auto exec = codegen::JitExecutor::create(*m->stepGraph, /*updatesState=*/true, /*seed=*/1);
    ASSERT_TRUE(exec) << exec.error().str();
    ASSERT_TRUE((*exec)->initialize(3));
    const codegen::JitGraph& jit = (*exec)->compiled();
    ASSERT_FALSE(jit.stateUpdates().empty());
    Interpreter interp(*m->stepGraph);
    ASSERT_TRUE(interp.initializeParameters(/*seed=*/3));
    std::vector<void*> params;
    for (Node* p : m->stepGraph->parameters()) params.push_back(const_cast<void*>(interp.parameter(p->name())->raw()));
    const int64_t batch = 64;
    std::vector<Tensor> ins, outs;
    for (Node* n : m->stepGraph->inputs()) ins.emplace_back(n->result()->type().dtype, bindBatch(n->result()->type().shape, batch));
    for (size_t i : jit.returnedOutputs()) {
      const TensorType& t = m->stepGraph->outputs()[i].value->type();
      outs.emplace_back(t.dtype, bindBatch(t.shape, batch));
    }
    std::vector<const void*> in;
    std::vector<void*> out;
    for (Tensor& t : ins) in.push_back(t.raw());
    for (Tensor& t : outs) out.push_back(t.raw());
    std::vector<unsigned char> arenaBytes(static_cast<size_t>(jit.arenaSize(batch) + 64));
    void* arena = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arenaBytes.data()) + 63) / 64 * 64);
    ASSERT_EQ(jit.call(batch, in.data(), out.data(), params.data(), arena, /*seed=*/1, /*step=*/0), 0);
    gAllocations = 0;
    tIsCaller = true;
    gCounting = true;
    int32_t status = jit.call(batch, in.data(), out.data(), params.data(), arena, /*seed=*/1, /*step=*/1);
    gCounting = false;
    EXPECT_EQ(status, 0) << jit.statusMessage(status);
    EXPECT_EQ(gAllocations, 0) << "heap allocations in a training step of " << model << "; the first of "
                               << gFirstSize << " bytes on " << (gFirstOnCaller ? "the calling thread" : "another thread");
  }
}
#endif

TEST(CodegenModels, Float64Graph) {
  Graph g("f64");
  Builder b(g);
  Value* x = b.input("x", DType::Float64, {-1, 5});
  Value* h = b.add(b.matmul(x, b.parameter("w", {5, 4}, {{"dtype", DType::Float64}})),
                   b.parameter("bias", {4}, {{"dtype", DType::Float64}}));
  Value* act = b.op(OpKind::Gelu, {b.op(OpKind::Elu, {h})});
  g.addOutput("y", b.op(OpKind::LogSoftmax, {b.op(OpKind::Mish, {act})}));
  g.addOutput("t", b.op(OpKind::Tanh, {b.op(OpKind::Erf, {h})}));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  // libm in float64: agreement to a few ulp of double.
  test::expectMatchesInterpreter(g, 1e-13);
}

TEST(CodegenModels, RunTimeChecksReportTheNode) {
  Graph g("checks");
  Builder b(g);
  Value* z = b.input("z", DType::Float32, {-1, 3});
  Value* labels = b.input("labels", DType::Int64, {-1});
  g.addOutput("loss", b.op(OpKind::SparseSoftmaxCrossEntropy, {z, labels}, {}, "xent"));
  ASSERT_TRUE(verifyGraph(g));
  auto jit = codegen::JitGraph::compile(g);
  ASSERT_TRUE(jit) << jit.error().str();
  Tensor zt(DType::Float32, {2, 3});
  Tensor lt = Tensor::fromVector<int64_t>({2}, {1, 3});
  auto r = (*jit)->run({{"z", zt}, {"labels", lt}}, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("xent"), std::string::npos) << r.error().str();
  EXPECT_NE(r.error().str().find("outside the classes"), std::string::npos) << r.error().str();
}

}  // namespace
}  // namespace kiln
