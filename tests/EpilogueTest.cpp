// Fused matmul epilogues: the elemental loop after a matmul runs on each row block of the
// product as soon as the runtime has computed it (kiln_rt_matmul_*_blocked calls it back).
// Checked against the interpreter at batches that are and are not multiples of the block (64
// rows of fashion_mlp's 300 features, set by ScheduleOptions::epilogueBlockBytes, and the
// runtime's own choice), on one thread and several, and bit for bit across thread counts.
#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "CodegenTestUtil.h"
#include "compiler/codegen/Jit.h"
#include "frontend/Expand.h"
#include "ir/Builder.h"
#include "runtime/KilnABI.h"

namespace kiln {
namespace {

constexpr double kModelTolerance = 2e-5;  // as CodegenModelsTest: float32 matmuls, three layers

// Each fused matmul is one call of the blocked runtime kernel (an unfused one calls
// kiln_rt_matmul_f32), so the calls count the epilogues in the optimized IR.
int epilogueCalls(const std::string& ir) {
  int n = 0;
  for (const char* call :
       {"call void @kiln_rt_matmul_f32_blocked(", "call void @kiln_rt_matmul_f64_blocked("})
    for (size_t p = ir.find(call); p != std::string::npos; p = ir.find(call, p + 1)) ++n;
  return n;
}

// fashion_mlp's predict graph (the model's inference form) with its own initializers: with
// arbitrary weights at scale 0.5 the float32 logits at batch 300 already differ from the
// interpreter's by 5e-5 on the unfused path (activations grow), which says nothing about fusion.
std::unique_ptr<frontend::ExpandedModel> fashionMlp() {
  auto m = frontend::loadModelFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"),
                                   frontend::Expansion::Inference);
  EXPECT_TRUE(m) << m.error().str();
  return m ? std::make_unique<frontend::ExpandedModel>(std::move(*m)) : nullptr;
}

using Threads = test::ScopedThreads;

// Options whose epilogues split the product into blocks of `bytes` (the default, 0, leaves the
// block size to the runtime).
codegen::JitOptions blocksOf(int64_t bytes) {
  codegen::JitOptions o;
  o.schedule.epilogueBlockBytes = bytes;
  return o;
}

// 64 rows of fashion_mlp's first two layers' 300 float32 features.
constexpr int64_t kFashionBlockBytes = 64 * 300 * 4;

void expectFashionMlpMatches(std::vector<int64_t> batches) {
  auto m = fashionMlp();
  ASSERT_TRUE(m);
  test::expectMatchesInterpreter(*m->graph, kModelTolerance, {{m->input->name(), {.floatScale = 1.0}}},
                                 batches, /*seed=*/1, /*useInitializers=*/true,
                                 blocksOf(kFashionBlockBytes));
  // And the runtime's blocks.
  test::expectMatchesInterpreter(*m->graph, kModelTolerance, {{m->input->name(), {.floatScale = 1.0}}},
                                 batches, /*seed=*/1, /*useInitializers=*/true);
}

TEST(Epilogue, FashionMlpDenseLayersTakeTheEpiloguePath) {
  auto m = fashionMlp();
  ASSERT_TRUE(m);
  Graph& g = *m->graph;
  ASSERT_TRUE(verifyGraph(g));
  codegen::JitOptions opts;
  opts.keepIR = true;
  // Without the fuse-elementwise pass (kiln bench's "unfused" variant): no epilogues.
  auto plain = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(plain) << plain.error().str();
  EXPECT_EQ(epilogueCalls((*plain)->optimizedIR()), 0);

  test::fuse(g);
  auto jit = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(jit) << jit.error().str();
  // Three dense layers, each matmul -> bias + batch norm + ELU (the last one writing the output).
  EXPECT_EQ(epilogueCalls((*jit)->optimizedIR()), 3);
  // Still one stored loop per matmul and one per fused group.
  EXPECT_EQ((*jit)->storedNodes(), 6);
}

TEST(Epilogue, FashionMlpMatchesInterpreterAcrossBlockBoundaries) {
  // 64 is exactly one block, 300 is four blocks and a partial one of 44 rows.
  Threads one(1);
  expectFashionMlpMatches({1, 7, 64, 300});
}

TEST(Epilogue, MultiThreadedBlocksMatchInterpreter) {
  // With several threads the blocks (and their epilogues) run on the runtime's pool.
  Threads two(2);
  expectFashionMlpMatches({7, 300});
}

TEST(Epilogue, BitIdenticalAcrossThreadCountsAndBlockSizes) {
  // Each element of C is computed whole by one thread in the same order, and the epilogue is
  // elementwise: the outputs must not depend on the threads or the blocks, to the bit.
  auto m = fashionMlp();
  ASSERT_TRUE(m);
  Graph& g = *m->graph;
  ASSERT_TRUE(verifyGraph(g));
  test::fuse(g);  // the epilogues are what this is about
  Interpreter interp(g);
  ASSERT_TRUE(interp.initializeParameters(/*seed=*/3));
  std::mt19937_64 rng(5);
  std::map<std::string, Tensor> inputs;
  const TensorType& t = m->input->result()->type();
  inputs[m->input->name()] =
      test::randomTensor(t.dtype, bindBatch(t.shape, 300), {.floatScale = 1.0}, rng);
  std::optional<std::map<std::string, Tensor>> first;
  for (int64_t bytes : {int64_t{0}, kFashionBlockBytes, int64_t{8 * 300 * 4}})
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(std::to_string(threads) + " threads, blocks of " + std::to_string(bytes) +
                   " bytes");
      Threads n(threads);
      auto jit = codegen::JitGraph::compile(g, blocksOf(bytes));
      ASSERT_TRUE(jit) << jit.error().str();
      auto got = (*jit)->run(inputs, interp.parameters());
      ASSERT_TRUE(got) << got.error().str();
      if (!first) {
        first = std::move(*got);
        continue;
      }
      for (const GraphOutput& o : g.outputs()) {
        const Tensor& a = first->at(o.name);
        const Tensor& b = got->at(o.name);
        ASSERT_EQ(a.size(), b.size());
        for (int64_t i = 0; i < a.size(); ++i)
          ASSERT_EQ(a.getDouble(i), b.getDouble(i)) << o.name << " element " << i;
      }
    }
}

// Compiles g with its IR kept, for epilogueCalls.
int compiledEpilogues(Graph& g) {
  EXPECT_TRUE(verifyGraph(g));
  test::fuse(g);
  codegen::JitOptions opts;
  opts.keepIR = true;
  auto jit = codegen::JitGraph::compile(g, opts);
  EXPECT_TRUE(jit) << jit.error().str();
  return jit ? epilogueCalls((*jit)->optimizedIR()) : -1;
}

TEST(Epilogue, TransposedRowBlocksAndAProductReadTwiceInline) {
  Graph g("epilogue_ta");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 9});
  // op(A) = a^T: a row block of the product is a column block of a (offset r0, same lda).
  // 150 rows of 9 features: blocks of 64, 64 and 22.
  Value* c = b.matmul(b.parameter("a", {6, 150}), b.parameter("w", {6, 9}), true, false);
  // swish by hand: the product has two users, both inside the one fused loop.
  Value* y = b.mul(c, b.op(OpKind::Sigmoid, {c}));
  g.addOutput("y", y);
  g.addOutput("x2", b.add(x, x));  // binds the batch
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  EXPECT_EQ(compiledEpilogues(g), 1);
  Threads one(1);
  test::expectMatchesInterpreter(g, 1e-5, {}, {1, 3}, 1, false, blocksOf(64 * 9 * 4));
}

TEST(Epilogue, AProductAlsoReadElsewhereStaysStored) {
  Graph g("epilogue_fallback");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 20});
  Value* c = b.matmul(x, b.parameter("w", {20, 70}));
  // The product feeds a reduction too (as a training step's backward pass reads it): it is
  // stored whole and the activation runs as its own pass.
  g.addOutput("y", b.op(OpKind::Relu, {c}));
  g.addOutput("s", b.reduceSum(c, {1}));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  EXPECT_EQ(compiledEpilogues(g), 0);
  Threads one(1);
  test::expectMatchesInterpreter(g, 1e-5, {}, {1, 70, 130}, 1, false, blocksOf(64 * 70 * 4));
}

TEST(Epilogue, BroadcastReadOfTheProductIsNotFused) {
  Graph g("epilogue_broadcast");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 20});
  // The product [1, 70] is broadcast over the batch rows by its user: a row block of the
  // result reads row 0 of the product, not its own rows, so no epilogue.
  Value* c = b.matmul(b.parameter("v", {1, 20}), b.parameter("w", {20, 70}));
  Value* h = b.matmul(x, b.parameter("w2", {20, 70}));
  g.addOutput("y", b.add(h, c));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  // Only h -> add is fused (the add reads h at its own index).
  EXPECT_EQ(compiledEpilogues(g), 1);
  Threads one(1);
  test::expectMatchesInterpreter(g, 1e-5, {}, {1, 70, 130}, 1, false, blocksOf(64 * 70 * 4));
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// ---- Large elementwise loops on the runtime's pool -----------------------------------------

int parallelLoops(const std::string& ir) {
  int n = 0;
  const std::string call = "call void @kiln_rt_parallel_for(";
  for (size_t p = ir.find(call); p != std::string::npos; p = ir.find(call, p + 1)) ++n;
  return n;
}

TEST(ParallelElementwise, LargeLoopsSplitOverThreadsBitIdentically) {
  // y = dropout(tanh(x * s + x), 0.3) * 2: a broadcast parameter, a transcendental and random
  // numbers keyed by the element's index, over [batch, 1024] (64K elements at batch 64).
  Graph g("parallel_elementwise");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 1024});
  Value* t = b.op(OpKind::Tanh, {b.add(b.mul(x, b.parameter("s", {1024})), x)});
  Value* d = b.op(OpKind::Dropout, {t}, {{"rate", 0.3}, {"training", true}}, "drop");
  g.addOutput("y", b.mul(d, b.scalar(2.0)));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  ASSERT_TRUE(verifyGraph(g));
  test::fuse(g);  // one loop for the whole chain
  codegen::JitOptions opts;
  opts.keepIR = true;
  auto jit = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ(parallelLoops((*jit)->optimizedIR()), 1);

  Interpreter interp(g);
  std::mt19937_64 rng(7);
  Tensor s = test::randomTensor(DType::Float32, {1024}, {}, rng);
  ASSERT_TRUE(interp.setParameter("s", s));
  // Batch 3 stays serial (3K elements); 64 and 100 take the pool with 2 and 3 threads.
  for (int64_t batch : {3, 64, 100}) {
    std::map<std::string, Tensor> inputs;
    inputs["x"] = test::randomTensor(DType::Float32, {batch, 1024}, {}, rng);
    RunOptions ro;
    ro.seed = 11;
    ro.step = 2;
    auto want = interp.run(inputs, ro);
    ASSERT_TRUE(want) << want.error().str();
    std::optional<Tensor> first;
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE("batch " + std::to_string(batch) + ", " + std::to_string(threads) + " threads");
      Threads n(threads);
      auto got = (*jit)->run(inputs, interp.parameters(), /*seed=*/11, /*step=*/2);
      ASSERT_TRUE(got) << got.error().str();
      const Tensor& y = got->at("y");
      EXPECT_LE(test::scaledError(y, want->at("y")), 1e-6);
      if (!first) {
        first = y;
        continue;
      }
      for (int64_t i = 0; i < y.size(); ++i) ASSERT_EQ(y.getDouble(i), first->getDouble(i)) << i;
    }
  }
}

TEST(ParallelElementwise, WorkNotElementCountDecidesTheSplit) {
  // 256 x 100 elements (a deep model's layer at batch 256): an exp (a dozen multiply-adds per
  // element) is worth two threads, a plain add of two tensors (three streams of memory) is not.
  // With the threshold on element count alone, neither split.
  Graph g("parallel_cost");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {256, 100});
  Value* y = b.input("y", DType::Float32, {256, 100});
  g.addOutput("sum", b.op(OpKind::Add, {x, y}, {}, "plain_sum"));
  g.addOutput("e", b.op(OpKind::Exp, {x}, {}, "costly_exp"));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  ASSERT_TRUE(verifyGraph(g));
  codegen::JitOptions opts;
  opts.keepIR = true;
  auto jit = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(jit) << jit.error().str();
  const std::string ir = (*jit)->optimizedIR();
  EXPECT_EQ(parallelLoops(ir), 1);
  EXPECT_NE(ir.find(".elemental.costly_exp"), std::string::npos);
  EXPECT_EQ(ir.find(".elemental.plain_sum"), std::string::npos);

  Interpreter interp(g);
  std::mt19937_64 rng(3);
  std::map<std::string, Tensor> inputs;
  inputs["x"] = test::randomTensor(DType::Float32, {256, 100}, {}, rng);
  inputs["y"] = test::randomTensor(DType::Float32, {256, 100}, {}, rng);
  auto want = interp.run(inputs, {});
  ASSERT_TRUE(want) << want.error().str();
  std::optional<Tensor> first;
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    Threads n(threads);
    auto got = (*jit)->run(inputs, interp.parameters(), /*seed=*/0, /*step=*/0);
    ASSERT_TRUE(got) << got.error().str();
    const Tensor& e = got->at("e");
    EXPECT_LE(test::scaledError(e, want->at("e")), 1e-6);
    EXPECT_LE(test::scaledError(got->at("sum"), want->at("sum")), 1e-6);
    if (!first) {
      first = e;
      continue;
    }
    for (int64_t i = 0; i < e.size(); ++i) ASSERT_EQ(e.getDouble(i), first->getDouble(i)) << i;
  }
}

}  // namespace
}  // namespace kiln
