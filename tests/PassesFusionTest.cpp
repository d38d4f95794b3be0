// The fuse-elementwise pass and the code generator that follows its fusion_group attributes:
// the attribute round-trips through the text format and the verifier, the pass is idempotent,
// a graph without groups compiles one loop per op, and hand-written or stale groups never give
// wrong code (an unsafe one is an error naming the node; a value that leaves its group is
// stored). Golden cases: tests/golden/fuse-elementwise.
#include <gtest/gtest.h>

#include "CodegenTestUtil.h"
#include "PassesTestUtil.h"
#include "compiler/codegen/JitExecutor.h"
#include "compiler/passes/Pass.h"
#include "compiler/training/Trainer.h"
#include "ir/ProtoIO.h"

namespace kiln {
namespace {

// matmul -> bias -> relu (an epilogue group) and exp -> neg (an elementwise pair).
constexpr const char* kDense = R"pb(
name: "dense"
input { name: "x" shape { dim: -1 dim: 5 } }
parameter { name: "w" shape { dim: 5 dim: 3 } init { kind: "glorot_uniform" } }
parameter { name: "b" shape { dim: 3 } init { kind: "zeros" } }
node { name: "mm" op: "matmul" input: "x" input: "w" }
node { name: "bias" op: "add" input: "mm" input: "b" }
node { name: "act" op: "relu" input: "bias" }
node { name: "e" op: "exp" input: "act" }
node { name: "y" op: "neg" input: "e" }
output { name: "y" tensor: "y" }
)pb";

std::map<std::string, int64_t> groups(const Graph& g) {
  std::map<std::string, int64_t> out;
  for (Node* n : g.nodes())
    if (fusionGroup(*n) >= 0) out[n->name()] = fusionGroup(*n);
  return out;
}

Expected<bool> runFuse(Graph& g) {
  passes::PassContext ctx;
  return passes::createFuseElementwise()->run(g, ctx);
}


TEST(FuseElementwise, OneGroupPerLoopAndIdempotent) {
  auto g = test::parseVerified(kDense, "dense.pbtxt");
  ASSERT_TRUE(g);
  auto changed = runFuse(*g);
  ASSERT_TRUE(changed) << changed.error().str();
  EXPECT_TRUE(*changed);
  // The matmul and its whole epilogue (bias, relu, exp, neg computed per row block) are one loop.
  EXPECT_EQ(groups(*g), (std::map<std::string, int64_t>{
                            {"mm", 0}, {"bias", 0}, {"act", 0}, {"e", 0}, {"y", 0}}));
  auto again = runFuse(*g);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again) << "the same graph must give the same groups";
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->storedNodes(), 2);  // the product, and the epilogue writing the output
  test::expectMatchesInterpreter(*g, 1e-6);
}

TEST(FuseElementwise, AttributeRoundTripsAndIsVerified) {
  auto g = test::parseVerified(kDense, "dense.pbtxt");
  ASSERT_TRUE(g);
  ASSERT_TRUE(runFuse(*g));
  std::string text = graphToText(*g);
  EXPECT_NE(text.find("fusion_group"), std::string::npos) << text;
  auto back = test::parseVerified(text, "again.pbtxt");
  ASSERT_TRUE(back);
  EXPECT_EQ(groups(*back), groups(*g));
  EXPECT_EQ(graphToText(*back), text);

  // Any op may carry it, but only as a non-negative int.
  std::string bad = kDense;
  bad.replace(bad.find("op: \"exp\" input: \"act\""), 22,
              "op: \"exp\" input: \"act\" attr { name: \"fusion_group\" f: 1.5 }");
  auto parsed = parseGraph(bad, GraphFormat::Text, "bad.pbtxt");
  ASSERT_TRUE(parsed) << parsed.error().str();
  Status s = verifyGraph(**parsed);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find(
                "node 'e' (exp): attribute 'fusion_group' must be a non-negative int (a fusion group id), found float 1.5"),
            std::string::npos)
      << s.error().str();
}

TEST(FuseElementwise, WithoutGroupsEveryOpIsItsOwnLoop) {
  auto g = test::parseVerified(kDense, "dense.pbtxt");
  ASSERT_TRUE(g);
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->storedNodes(), test::oneLoopPerOp(*g));
  EXPECT_EQ((*jit)->storedNodes(), 5);
  // And the same numbers (expectMatchesInterpreter fuses: compare the unfused code directly).
  Interpreter interp(*g);
  ASSERT_TRUE(interp.initializeParameters(3));
  std::mt19937_64 rng(2);
  Tensor x = test::randomTensor(DType::Float32, {6, 5}, {}, rng);
  auto want = interp.run({{"x", x}});
  auto got = (*jit)->run({{"x", x}}, interp.parameters());
  ASSERT_TRUE(want && got);
  EXPECT_LE(test::scaledError(got->at("y"), want->at("y")), 1e-6);
}

TEST(FuseElementwise, UnsafeHandWrittenGroupIsAnErrorNamingTheNode) {
  // relu's reader is a softmax, which reads its operand in several passes: computing the relu
  // inside it would redo it per pass. The annotation says to; the code generator refuses.
  auto g = test::parseVerified(R"pb(
name: "bad_group"
input { name: "x" shape { dim: -1 dim: 5 } }
node { name: "r" op: "relu" input: "x" attr { name: "fusion_group" i: 3 } }
node { name: "sm" op: "softmax" input: "r" attr { name: "fusion_group" i: 3 } }
output { name: "sm" tensor: "sm" }
)pb",
                               "bad_group.pbtxt");
  ASSERT_TRUE(g);
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_FALSE(jit);
  EXPECT_NE(jit.error().str().find(
                "node 'r' (relu): fusion_group 3 puts 'r' in the loop of its reader 'sm', but its "
                "reader 'sm' (softmax) reads its operands more than once or from memory"),
            std::string::npos)
      << jit.error().str();
  // The pass itself recomputes the groups: nothing fuses here.
  ASSERT_TRUE(runFuse(*g));
  EXPECT_TRUE(groups(*g).empty());
  test::expectMatchesInterpreter(*g, 1e-6);
}

TEST(FuseElementwise, AValueThatLeavesItsGroupIsStored) {
  // A group decided before another reader was added (as --log-gradients adds outputs after the
  // pipeline): 'act' is now also an output, so it is stored, and the results stay right.
  auto g = test::parseVerified(kDense, "dense.pbtxt");
  ASSERT_TRUE(g);
  ASSERT_TRUE(runFuse(*g));
  g->addOutput("act", g->findNode("act")->result());
  ASSERT_TRUE(verifyGraph(*g));
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->storedNodes(), 3);  // the product, bias+relu (the epilogue), exp+neg
  // Compare without refusing (expectMatchesInterpreter would recompute the groups).
  Interpreter interp(*g);
  ASSERT_TRUE(interp.initializeParameters(3));
  std::mt19937_64 rng(4);
  Tensor x = test::randomTensor(DType::Float32, {9, 5}, {}, rng);
  auto want = interp.run({{"x", x}});
  auto got = (*jit)->run({{"x", x}}, interp.parameters());
  ASSERT_TRUE(want && got);
  for (const char* o : {"y", "act"})
    EXPECT_LE(test::scaledError(got->at(o), want->at(o)), 1e-6) << o;
}

TEST(FuseElementwise, ValuesWithSeveralReadersInOneLoopAreComputedThere) {
  // 24 Swish layers without products: x[i+1] = x[i] * sigmoid(x[i]), so every x[i] has two
  // readers, both in the one loop that stores the last. All of it is one group and one loop.
  // Every walk over the loop's expression (the pass, the schedule, the emitter) must visit a
  // shared value once: visiting it once per path would take 2^24 steps here.
  constexpr int kLayers = 24;
  std::string text = R"pb(
name: "swish_chain"
input { name: "x0" shape { dim: -1 dim: 7 } }
)pb";
  for (int i = 0; i < kLayers; ++i) {
    std::string x = "x" + std::to_string(i), s = "s" + std::to_string(i);
    text += "node { name: \"" + s + "\" op: \"sigmoid\" input: \"" + x + "\" }\n";
    text += "node { name: \"x" + std::to_string(i + 1) + "\" op: \"mul\" input: \"" + x +
            "\" input: \"" + s + "\" }\n";
  }
  text += "output { name: \"y\" tensor: \"x" + std::to_string(kLayers) + "\" }\n";
  auto g = test::parseVerified(text, "swish_chain.pbtxt");
  ASSERT_TRUE(g);
  ASSERT_TRUE(runFuse(*g));
  std::map<std::string, int64_t> got = groups(*g);
  EXPECT_EQ(got.size(), size_t(2 * kLayers));
  for (const auto& [name, group] : got) EXPECT_EQ(group, 0) << name;
  auto jit = codegen::JitGraph::compile(*g);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->storedNodes(), 1);
  test::expectMatchesInterpreter(*g, 1e-6);

  // The same value read by two loops stays stored: 's0' also feeds an output of its own.
  g->addOutput("gate", g->findNode("s0")->result());
  ASSERT_TRUE(verifyGraph(*g));
  ASSERT_TRUE(runFuse(*g));
  EXPECT_EQ(fusionGroup(*g->findNode("s0")), -1);
  test::expectMatchesInterpreter(*g, 1e-6);
}

TEST(FuseElementwise, UnfusedTrainingStepMatchesTheInterpreter) {
  // kiln bench --mode train's 'unfused' variant, and kiln train --disable-pass fuse-elementwise:
  // the step graph without groups, one loop per op.
  auto m = loadTrainingModel(test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"), "",
                             nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  Graph& g = *m->stepGraph;
  auto jit = codegen::JitExecutor::create(g, /*updatesState=*/true, /*seed=*/1);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->compiled().storedNodes(), test::oneLoopPerOp(g));
  InterpreterExecutor interp(g, /*updatesState=*/true, /*seed=*/1);
  ASSERT_TRUE(interp.initialize(5));
  ASSERT_TRUE((*jit)->initialize(5));
  std::mt19937_64 rng(6);
  std::map<std::string, Tensor> inputs;
  for (Node* in : g.inputs())
    inputs[in->name()] = test::randomTensor(in->result()->type().dtype,
                                            bindBatch(in->result()->type().shape, 12),
                                            {.floatScale = 1.0, .intHi = 9}, rng);
  for (int64_t step = 0; step < 2; ++step) {
    auto want = interp.run(inputs, step);
    auto got = (*jit)->run(inputs, step);
    ASSERT_TRUE(want) << want.error().str();
    ASSERT_TRUE(got) << got.error().str();
    ASSERT_FALSE(got->empty());
    for (const auto& [name, t] : *got)
      EXPECT_LE(test::scaledError(t, want->at(name)), 2e-5) << name << " at step " << step;
  }
  std::map<std::string, Tensor> a = interp.state(), b = (*jit)->state();
  for (const auto& [name, t] : a) EXPECT_LE(test::scaledError(b.at(name), t), 2e-5) << name;
}

}  // namespace
}  // namespace kiln
