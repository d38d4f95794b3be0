// The pass manager (registry, errors naming the pass, fixed points, --disable-pass), batch-norm
// folding and the prepare graph checked numerically through the interpreter, the clean-ups on
// every example's training step (node counts, same step results), and the training passes.
#include <gtest/gtest.h>

#include <filesystem>

#include "PassesTestUtil.h"
#include "TestUtil.h"
#include "compiler/passes/Pass.h"
#include "compiler/passes/Prepare.h"
#include "compiler/training/Trainer.h"
#include "compiler/training/TrainingGraph.h"
#include "frontend/Expand.h"

namespace kiln {
namespace {

using passes::PassManager;
using passes::PassManagerOptions;

PassManagerOptions verifying() {
  PassManagerOptions o;
  o.verifyEach = true;
  return o;
}

const char* kSmall = R"(
name: "small"
input { name: "x" shape { dim: -1 dim: 3 } }
node { name: "one" op: "constant" attr { name: "value" floats { v: 1 } } }
node { name: "a" op: "mul" input: "x" input: "one" }
node { name: "dead" op: "exp" input: "a" }
output { name: "y" tensor: "a" }
)";

TEST(PassRegistry, NamesAreKebabCaseAndUnique) {
  std::set<std::string> seen;
  for (const passes::PassInfo& p : passes::passRegistry()) {
    EXPECT_TRUE(seen.insert(std::string(p.name)).second) << p.name;
    for (char c : p.name)
      EXPECT_TRUE(std::islower(static_cast<unsigned char>(c)) || c == '-') << p.name;
    auto pass = p.create();
    EXPECT_EQ(pass->name(), p.name);
  }
  EXPECT_EQ(seen.size(), 8u);  // ... insert-clipping, fuse-elementwise
}

TEST(PassRegistry, UnknownPassSuggestsTheClosest) {
  auto p = passes::createPass("fold-constant");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().str().find("unknown pass 'fold-constant' (did you mean 'fold-constants'?)"),
            std::string::npos)
      << p.error().str();
  PassManagerOptions o;
  o.disabled.insert("csee");
  PassManager pm(o);
  Status s = pm.checkDisabled();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("--disable-pass: unknown pass 'csee' (did you mean 'cse'?)"),
            std::string::npos);
}

/// A pass that breaks the graph (a matmul of mismatched operands), to see the verifier name it.
class BreakingPass final : public passes::Pass {
 public:
  std::string_view name() const override { return "break-things"; }
  Expected<bool> run(Graph& g, passes::PassContext&) override {
    Node* a = g.findNode("a");
    Node* mm = g.addNode(OpKind::MatMul, "bad", {a->result(), a->result()});
    g.setOutput(0, mm->result());
    return true;
  }
};

TEST(PassManager, VerifierNamesThePassThatBrokeTheGraph) {
  auto g = test::parseVerified(kSmall);
  ASSERT_TRUE(g);
  PassManager pm(verifying());
  pm.add(std::make_unique<BreakingPass>());
  auto r = pm.run(*g);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("after pass 'break-things' the graph is invalid"),
            std::string::npos)
      << r.error().str();
  EXPECT_NE(r.error().str().find("node 'bad' (matmul)"), std::string::npos) << r.error().str();
}

TEST(PassManager, ErrorsOfAPassNameIt) {
  auto g = test::parseVerified(kSmall);
  ASSERT_TRUE(g);
  PassManager pm(verifying());
  ASSERT_TRUE(pm.add("insert-clipping").isOk());
  auto r = pm.run(*g);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("pass 'insert-clipping': needs a training step's gradients"),
            std::string::npos)
      << r.error().str();
}

TEST(PassManager, FixedPointStopsWhenNothingChanges) {
  auto g = test::parseVerified(kSmall);
  ASSERT_TRUE(g);
  PassManager pm(verifying());
  passes::addCleanups(pm);
  auto r = pm.run(*g);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(*r);
  // Round 1 changes (simplify removes x*1, dce the dead exp and the constant), round 2 does not.
  ASSERT_EQ(pm.history().size(), 8u);
  EXPECT_TRUE(pm.history()[0].changed);
  for (size_t i = 4; i < 8; ++i) EXPECT_FALSE(pm.history()[i].changed) << pm.history()[i].pass;
  EXPECT_EQ(g->nodes().size(), 1u);  // just the input
  EXPECT_EQ(g->outputs()[0].value, g->findValue("x"));
}

TEST(PassManager, DisabledPassDoesNotRun) {
  auto g = test::parseVerified(kSmall);
  ASSERT_TRUE(g);
  PassManagerOptions o = verifying();
  o.disabled.insert("dce");
  PassManager pm(o);
  passes::addCleanups(pm);
  ASSERT_TRUE(pm.run(*g));
  EXPECT_TRUE(g->findNode("dead")) << "dce was disabled";
  EXPECT_FALSE(g->findNode("a")) << "simplify still ran";
  for (const passes::PassRun& r : pm.history()) EXPECT_NE(r.pass, "dce");
}

TEST(PassManager, PrintAfterAllShowsEachChangingPass) {
  auto g = test::parseVerified(kSmall);
  ASSERT_TRUE(g);
  std::FILE* out = std::tmpfile();
  ASSERT_TRUE(out);
  PassManagerOptions o = verifying();
  o.printAfterAll = out;
  PassManager pm(o);
  passes::addCleanups(pm);
  ASSERT_TRUE(pm.run(*g));
  std::rewind(out);
  std::string text;
  for (int c; (c = std::fgetc(out)) != EOF;) text += char(c);
  std::fclose(out);
  EXPECT_NE(text.find("# ---- after simplify: 3 nodes\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# ---- after dce: 1 nodes\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("after cse"), std::string::npos) << "cse changed nothing, so it prints nothing";
}

// ---- Batch-norm folding on the fashion_mlp graph, with random weights and statistics ------

std::unique_ptr<Graph> fashionGraph() {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  if (!g) {
    ADD_FAILURE() << g.error().str();
    return nullptr;
  }
  EXPECT_TRUE(verifyGraph(**g).isOk());
  return std::move(*g);
}

size_t countOp(const Graph& g, OpKind op) {
  size_t n = 0;
  for (Node* node : g.nodes()) n += node->op() == op;
  return n;
}

TEST(FoldBatchNorm, FashionMlpFoldsEveryBatchNormAndAgrees) {
  auto before = fashionGraph(), g = fashionGraph();
  ASSERT_TRUE(before && g);
  ASSERT_EQ(countOp(*g, OpKind::BatchNorm), 3u);
  PassManager pm(verifying());
  passes::buildInferencePipeline(pm);
  auto r = pm.run(*g);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(countOp(*g, OpKind::BatchNorm), 0u);
  EXPECT_EQ(countOp(*g, OpKind::MatMul), 3u);
  for (uint64_t seed : {1, 2, 3}) test::expectSameOutputs(*before, *g, seed, /*batch=*/5);
}

TEST(FoldBatchNorm, PrepareGraphComputesTheFoldedWeightsOnce) {
  auto before = fashionGraph(), g = fashionGraph();
  ASSERT_TRUE(before && g);
  PassManager pm(verifying());
  passes::buildInferencePipeline(pm);
  ASSERT_TRUE(pm.run(*g));
  auto prepare = passes::hoistParameterMath(*g);
  ASSERT_TRUE(prepare) << prepare.error().str();
  // The prediction graph keeps the three products and their bias adds, on prepared weights.
  EXPECT_EQ(countOp(*g, OpKind::MatMul), 3u);
  EXPECT_EQ(countOp(*g, OpKind::Rsqrt), 0u);
  EXPECT_EQ((*prepare)->outputs().size(), 6u);  // W' and b' of three layers
  EXPECT_EQ(g->parameters().size(), 6u);
  for (Node* p : g->parameters())
    EXPECT_NE(p->name().find("/prepared"), std::string::npos) << p->name();

  std::map<std::string, Tensor> inputs, params;
  test::randomBindings(*before, /*seed=*/11, /*batch=*/4, inputs, params);
  Interpreter ref(*before);
  for (auto& [k, v] : params) ASSERT_TRUE(ref.setParameter(k, v).isOk());
  auto want = ref.run(inputs);
  ASSERT_TRUE(want);
  auto prepared = passes::prepareParameters(**prepare, *g, params);
  ASSERT_TRUE(prepared) << prepared.error().str();
  Interpreter folded(*g);
  for (auto& [k, v] : *prepared) ASSERT_TRUE(folded.setParameter(k, v).isOk()) << k;
  auto got = folded.run(inputs);
  ASSERT_TRUE(got) << got.error().str();
  const Tensor& a = want->at("logits");
  const Tensor& b = got->at("logits");
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a.getDouble(i), b.getDouble(i), 1e-5 * (1 + std::abs(a.getDouble(i)))) << i;
}

// ---- Training steps: node counts before/after the clean-ups, same results -----------------

struct StepGraph {
  std::unique_ptr<Graph> graph;
  TrainingGraphInfo info;
  std::optional<frontend::TrainingSpec> spec;
};

StepGraph buildStep(const std::string& example, bool clip = true, const std::string& freeze = "") {
  StepGraph s;
  auto m = frontend::loadModelFile(
      test::sourcePath("examples/" + example + "/" + example + ".model.pbtxt"),
      frontend::Expansion::Evaluation);
  if (!m) {
    ADD_FAILURE() << m.error().str();
    return s;
  }
  s.graph = std::move(m->graph);
  s.spec = m->training;
  if (!freeze.empty()) {
    passes::PassContext ctx;
    ctx.freezeRegex = freeze;
    PassManager pm(verifying());
    pm.add(passes::createPruneFrozen());
    auto r = pm.run(*s.graph, ctx);
    EXPECT_TRUE(r && *r) << (r ? "nothing frozen" : r.error().str());
  }
  TrainingGraphOptions o{/*totalSteps=*/1000};
  o.clipGradients = clip;
  auto info = buildTrainingGraph(*s.graph, *s.spec, o);
  if (!info) {
    ADD_FAILURE() << info.error().str();
    return s;
  }
  s.info = *info;
  return s;
}

class TrainingCleanups : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainingCleanups, ShrinkTheStepAndKeepItsResults) {
  StepGraph before = buildStep(GetParam()), after = buildStep(GetParam());
  ASSERT_TRUE(before.graph && after.graph);
  PassManager pm(verifying());
  passes::buildTrainingPipeline(pm);
  size_t n0 = after.graph->nodes().size();
  auto r = pm.run(*after.graph);
  ASSERT_TRUE(r) << r.error().str();
  size_t n1 = after.graph->nodes().size();
  std::printf("[ counts   ] %s training step: %zu -> %zu nodes\n", GetParam().c_str(), n0, n1);
  EXPECT_LT(n1, n0);
  test::expectSameOutputs(*before.graph, *after.graph, /*seed=*/5, /*batch=*/3);
}

std::vector<std::string> exampleNames() {
  std::vector<std::string> out;
  // Directories holding a model file NAME/NAME.model.pbtxt (not every example is a model).
  for (const auto& d : std::filesystem::directory_iterator(test::sourcePath("examples")))
    if (std::filesystem::exists(d.path() / (d.path().filename().string() + ".model.pbtxt")))
      out.push_back(d.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Examples, TrainingCleanups, ::testing::ValuesIn(exampleNames()));

TEST(InsertClipping, PassGivesTheSameStepAsTheBuilder) {
  // A model with global-norm clipping: built with clipping inline vs built without and clipped
  // by the pass, the two steps compute the same new state.
  StepGraph inlineClip = buildStep("deep_swish_1cycle", /*clip=*/true);
  StepGraph viaPass = buildStep("deep_swish_1cycle", /*clip=*/false);
  ASSERT_TRUE(inlineClip.graph && viaPass.graph);
  ASSERT_NE(inlineClip.spec->clipping.mode, frontend::ClipMode::None)
      << "deep_swish_1cycle should clip (else this test checks nothing)";
  passes::PassContext ctx;
  ctx.clipping = &viaPass.spec->clipping;
  ctx.gradients = &viaPass.info.gradients;
  PassManager pm(verifying());
  pm.add(passes::createInsertClipping());
  size_t n0 = viaPass.graph->nodes().size();
  auto r = pm.run(*viaPass.graph, ctx);
  ASSERT_TRUE(r && *r) << (r ? "unchanged" : r.error().str());
  EXPECT_EQ(viaPass.graph->nodes().size(), inlineClip.graph->nodes().size());
  EXPECT_GT(viaPass.graph->nodes().size(), n0);
  test::expectSameOutputs(*inlineClip.graph, *viaPass.graph, /*seed=*/9, /*batch=*/4);
  // And without the pass the step differs (the check above is not vacuous).
  StepGraph unclipped = buildStep("deep_swish_1cycle", /*clip=*/false);
  std::map<std::string, Tensor> inputs, params;
  test::randomBindings(*inlineClip.graph, 9, 4, inputs, params);
  auto run = [&](const Graph& g) {
    Interpreter in(g);
    for (Node* p : g.parameters())
      EXPECT_TRUE(in.setParameter(p->name(), params.at(p->name())).isOk());
    return *in.run(inputs);
  };
  auto a = run(*inlineClip.graph), b = run(*unclipped.graph);
  double maxDiff = 0;
  for (auto& [name, t] : a)
    for (int64_t i = 0; i < t.size(); ++i)
      maxDiff = std::max(maxDiff, std::abs(t.getDouble(i) - b.at(name).getDouble(i)));
  EXPECT_GT(maxDiff, 1e-4);
}

TEST(PruneFrozen, FrozenLayersGetNoUpdate) {
  StepGraph full = buildStep("transfer_b");
  StepGraph frozen = buildStep("transfer_b", /*clip=*/true, /*freeze=*/"hidden1/.*");
  ASSERT_TRUE(full.graph && frozen.graph);
  std::printf("[ counts   ] transfer_b step: %zu nodes, %zu with hidden1 frozen\n",
              full.graph->nodes().size(), frozen.graph->nodes().size());
  EXPECT_LT(frozen.graph->nodes().size(), full.graph->nodes().size());
  for (const std::string& t : frozen.info.trainable)
    EXPECT_EQ(t.rfind("hidden1/", 0), std::string::npos) << t;
  EXPECT_EQ(frozen.info.trainable.size() + 2, full.info.trainable.size());
}

TEST(PruneFrozen, RegexThatMatchesNothingIsAnError) {
  auto g = fashionGraph();
  ASSERT_TRUE(g);
  passes::PassContext ctx;
  ctx.freezeRegex = "nope/.*";
  PassManager pm(verifying());
  pm.add(passes::createPruneFrozen());
  auto r = pm.run(*g, ctx);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("--freeze 'nope/.*' matches no parameter of graph 'fashion_mlp'"),
            std::string::npos)
      << r.error().str();
}

TEST(PruneFrozen, BadRegexIsAnError) {
  auto g = fashionGraph();
  ASSERT_TRUE(g);
  auto r = passes::freezeParameters(*g, "hidden1/(");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("--freeze 'hidden1/(' is not a regular expression"), std::string::npos)
      << r.error().str();
}

TEST(PruneFrozen, TrainerFreezesThroughThePass) {
  const std::string path = test::sourcePath("examples/transfer_b/transfer_b.model.pbtxt");
  auto m = loadTrainingModel(path, "hidden1/.*", nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ(m->frozen, (std::vector<std::string>{"hidden1/kernel", "hidden1/bias"}));
  for (const std::string& t : m->info.trainable) EXPECT_EQ(t.rfind("hidden1/", 0), std::string::npos) << t;
  auto none = loadTrainingModel(path, "nothing/.*", nullptr, nullptr);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("--freeze 'nothing/.*' matches no trainable parameter of"), std::string::npos)
      << none.error().str();
}

}  // namespace
}  // namespace kiln
