// Multi-output loops (planLoopMerges): consecutive fused groups of one shape share one loop that
// stores each group's results in order. Same numbers as the interpreter (serial and parallel
// loops), fewer loops, none without the fuse-elementwise pass, and the arena plan keeps every
// buffer a merged loop touches apart from the others.
#include <gtest/gtest.h>

#include <llvm/IR/LLVMContext.h>

#include "CodegenTestUtil.h"
#include "TestUtil.h"
#include "compiler/codegen/Lowering.h"
#include "compiler/passes/Pass.h"
#include "compiler/training/Trainer.h"

namespace kiln {
namespace {

// Three outputs of one shape, each read by the next and each the end of a fused pair (the pass
// annotates groups of two or more nodes): a = x*x + x, b = 2a + x, c = exp(b) * s, s a stored [8]
// vector broadcast along the rows (the kind of operand a later member could overwrite if the
// arena reused its memory within the merged loop).
constexpr const char* kChain = R"pb(
name: "chain"
input { name: "x" shape { dim: -1 dim: 8 } }
parameter { name: "w" shape { dim: 8 } init { kind: "glorot_uniform" } }
node { name: "two" op: "constant" attr { name: "value" floats { v: 2 } } }
node { name: "s" op: "exp" input: "w" }
node { name: "sq" op: "mul" input: "x" input: "x" }
node { name: "a" op: "add" input: "sq" input: "x" }
node { name: "a2" op: "mul" input: "a" input: "two" }
node { name: "b" op: "add" input: "a2" input: "x" }
node { name: "e" op: "exp" input: "b" }
node { name: "c" op: "mul" input: "e" input: "s" }
output { name: "a" tensor: "a" }
output { name: "b" tensor: "b" }
output { name: "c" tensor: "c" }
)pb";

TEST(MergedLoops, OutputsOfOneShapeShareOneLoopAndMatchTheInterpreter) {
  auto g = test::parseVerified(kChain, "chain.pbtxt");
  ASSERT_TRUE(g);
  // Batches 1 and 7 run the serial loop; 9000 rows (72K elements) the parallel one on 2 threads.
  test::ScopedThreads threads(2);
  test::expectMatchesInterpreter(*g, 1e-6, {}, {1, 7, 9000});
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_TRUE(jit) << jit.error().str();
  // s ([8]) has its own loop; a, b and c (each an output, so each its own group) share one.
  EXPECT_EQ((*jit)->storedNodes(), 2);
  EXPECT_EQ((*jit)->mergedNodes(), 2);
}

TEST(MergedLoops, NoneWithoutTheFusePass) {
  auto g = test::parseVerified(kChain, "chain.pbtxt");
  ASSERT_TRUE(g);
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->mergedNodes(), 0);
  EXPECT_EQ((*jit)->storedNodes(), test::oneLoopPerOp(*g));
}

// deep_selu's fused training step: nadam's updates of m, v and each weight merge, and within
// every merged loop no two arena buffers the loop touches share memory.
TEST(MergedLoops, ArenaBuffersOfAMergedLoopNeverOverlap) {
  auto model = loadTrainingModel(std::string(KILN_SOURCE_DIR) + "/examples/deep_selu/deep_selu.model.pbtxt",
                                           "", [](frontend::TrainingSpec&) {},
                                           [](const frontend::TrainingSpec&) { return int64_t{100}; });
  ASSERT_TRUE(model) << model.error().str();
  Graph& g = *model->stepGraph;
  passes::PassManager pm;
  passes::buildTrainingPipeline(pm);
  ASSERT_TRUE(pm.run(g));
  llvm::LLVMContext ctx;
  auto lowered = codegen::lowerGraph(g, ctx, "", {}, KILN_ENTRY_TRAIN_STEP, /*updatesState=*/true);
  ASSERT_TRUE(lowered) << lowered.error().str();
  const codegen::Schedule& s = lowered->schedule;
  size_t largest = 0;
  for (const auto& [head, members] : s.mergedLoops) {
    largest = std::max(largest, members.size());
    std::set<const Value*> touched;
    for (const Node* m : members) {
      for (const Value* v : codegen::storedReads(*m, s)) touched.insert(v);
      for (size_t r = 0; r < m->numResults(); ++r) touched.insert(m->result(r));
    }
    std::vector<const codegen::BufferSlot*> slots;
    for (const Value* v : touched)
      if (const codegen::BufferSlot* slot = lowered->plan.find(v)) slots.push_back(slot);
    for (size_t i = 0; i < slots.size(); ++i)
      for (size_t j = i + 1; j < slots.size(); ++j) {
        const codegen::BufferSlot& p = *slots[i];
        const codegen::BufferSlot& q = *slots[j];
        if (p.perBatch != q.perBatch) continue;  // different regions of the arena
        EXPECT_TRUE(p.offset + p.bytes <= q.offset || q.offset + q.bytes <= p.offset)
            << "'" << p.value->name() << "' and '" << q.value->name() << "' overlap in the loop of '"
            << head->name() << "'";
      }
  }
  EXPECT_GE(largest, 3u) << "nadam's m, v and weight updates should share a loop";
  EXPECT_GT(lowered->mergedNodes, 40);
}

}  // namespace
}  // namespace kiln
