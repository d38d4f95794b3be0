// Compiled training: the entry-point ABI (runtime/KilnABI.h) of graphs lowered for each entry.
#include <gtest/gtest.h>

#include <llvm/IR/LLVMContext.h>

#include "CodegenTestUtil.h"
#include "compiler/codegen/Lowering.h"
#include "ir/Builder.h"

namespace kiln {
namespace {

Graph tinyGraph() {
  Graph g("tiny net");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 3});
  g.addOutput("y", b.op(OpKind::Relu, {x}));
  return g;
}

TEST(CodegenTraining, EntrySymbolsFollowTheAbi) {
  Graph g = tinyGraph();
  ASSERT_TRUE(verifyGraph(g));
  llvm::LLVMContext ctx;
  for (auto [entry, want] : {std::pair{KILN_ENTRY_PREDICT, "tiny_net_predict"},
                             {KILN_ENTRY_TRAIN_STEP, "tiny_net_train_step"},
                             {KILN_ENTRY_EVALUATE, "tiny_net_evaluate"}}) {
    auto lowered = codegen::lowerGraph(g, ctx, /*name=*/"", /*schedule=*/{}, entry);
    ASSERT_TRUE(lowered) << lowered.error().str();
    EXPECT_EQ(lowered->entrySymbol, want);
    EXPECT_EQ(lowered->arenaSizeSymbol, std::string(want) + "_arena_size");
    llvm::Function* f = lowered->module->getFunction(want);
    ASSERT_NE(f, nullptr) << want;
    // kiln_entry_fn: (batch, inputs, outputs, params, arena, seed, step) -> int32.
    ASSERT_EQ(f->arg_size(), 7u);
    EXPECT_TRUE(f->getReturnType()->isIntegerTy(32));
    EXPECT_TRUE(f->getArg(5)->getType()->isIntegerTy(64));
    EXPECT_TRUE(f->getArg(6)->getType()->isIntegerTy(64));
    EXPECT_NE(lowered->module->getFunction(std::string(want) + "_arena_size"), nullptr);
  }
}

TEST(CodegenTraining, JitCallsTheChosenEntry) {
  Graph g = tinyGraph();
  ASSERT_TRUE(verifyGraph(g));
  codegen::JitOptions opts;
  opts.entry = KILN_ENTRY_EVALUATE;
  auto jit = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(jit) << jit.error().str();
  float x[6] = {-1, 2, -3, 4, 0, 5}, y[6] = {};
  const void* in[] = {x};
  void* out[] = {y};
  std::vector<unsigned char> arena(static_cast<size_t>((*jit)->arenaSize(2)) + 64);
  void* a = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arena.data()) + 63) / 64 * 64);
  ASSERT_EQ((*jit)->call(/*batch=*/2, in, out, /*params=*/nullptr, a, /*seed=*/9, /*step=*/4), 0);
  const float want[6] = {0, 2, 0, 4, 0, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << i;
}

}  // namespace
}  // namespace kiln
