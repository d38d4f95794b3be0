// Every compiled variant kiln bench times, checked against the reference interpreter on the
// original graph: 'unfused' (no passes, so no fusion groups), the inference pipeline with
// --disable-pass fuse-elementwise, and 'fused+folded' (the inference pipeline, which ends with
// fuse-elementwise, and the prepare graph), on every example model with random batch-norm
// statistics (the initializers' mean 0 / variance 1 would make the folding nearly trivial).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "CodegenTestUtil.h"
#include "compiler/passes/Pass.h"
#include "compiler/passes/Prepare.h"
#include "frontend/Expand.h"

namespace kiln {
namespace {

// As CodegenModelsTest: float32 products and transcendental approximations; folding adds
// the rounding of W' and b' (a few ulps).
constexpr double kTolerance = 5e-5;

std::vector<std::string> exampleModels() {
  std::vector<std::string> out;
  // Directories holding a model file NAME/NAME.model.pbtxt (examples/aot_fashion holds a program).
  for (const auto& d : std::filesystem::directory_iterator(test::sourcePath("examples")))
    if (std::filesystem::exists(d.path() / (d.path().filename().string() + ".model.pbtxt")))
      out.push_back(d.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Initializer weights; batch-norm gamma, beta, moving mean random and moving variance in
/// [0.5, 1.5].
std::map<std::string, Tensor> modelParameters(const Graph& g, uint64_t seed) {
  Interpreter init(g);
  EXPECT_TRUE(init.initializeParameters(seed).isOk());
  std::map<std::string, Tensor> params = init.parameters();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (auto& [name, t] : params) {
    bool variance = name.find("moving_variance") != std::string::npos;
    bool stat = variance || name.find("moving_mean") != std::string::npos ||
                name.find("/gamma") != std::string::npos || name.find("/beta") != std::string::npos;
    if (!stat) continue;
    for (int64_t i = 0; i < t.size(); ++i)
      t.setDouble(
          i, variance ? 1 + u(rng) : (name.find("gamma") != std::string::npos ? 1 : 0) + u(rng));
  }
  return params;
}


bool hasFusionGroups(const Graph& g) {
  for (Node* n : g.nodes())
    if (fusionGroup(*n) >= 0) return true;
  return false;
}

/// The inference pipeline (minus `disabled`), then the parameter math hoisted into the prepare
/// graph and evaluated; returns the prediction graph's parameter values.
std::map<std::string, Tensor> optimize(Graph& g, const std::map<std::string, Tensor>& params,
                                       std::set<std::string> disabled = {}) {
  passes::PassManagerOptions o;
  o.verifyEach = true;
  o.disabled = std::move(disabled);
  passes::PassManager pm(o);
  passes::buildInferencePipeline(pm);
  auto r = pm.run(g);
  EXPECT_TRUE(r) << r.error().str();
  auto prepare = passes::hoistParameterMath(g);
  EXPECT_TRUE(prepare) << prepare.error().str();
  if (!prepare) return {};
  auto prepared = passes::prepareParameters(**prepare, g, params);
  EXPECT_TRUE(prepared) << prepared.error().str();
  return prepared ? *prepared : std::map<std::string, Tensor>{};
}

class PassesCodegen : public ::testing::TestWithParam<std::string> {};

TEST_P(PassesCodegen, CompiledVariantsMatchTheInterpreter) {
  const std::string file =
      test::sourcePath("examples/" + GetParam() + "/" + GetParam() + ".model.pbtxt");
  auto ref = frontend::loadModelFile(file, frontend::Expansion::Inference);
  ASSERT_TRUE(ref) << ref.error().str();
  const Graph& g0 = *ref->graph;
  std::map<std::string, Tensor> params = modelParameters(g0, /*seed=*/3);

  // unfused: the graph as built (no passes, so no fusion groups), every op its own loop.
  auto unfusedModel = frontend::loadModelFile(file, frontend::Expansion::Inference);
  ASSERT_TRUE(unfusedModel);
  auto unfused = codegen::JitGraph::compile(*unfusedModel->graph);
  ASSERT_TRUE(unfused) << unfused.error().str();
  EXPECT_EQ((*unfused)->storedNodes(), test::oneLoopPerOp(*unfusedModel->graph));

  // folded, fusion disabled by name (--disable-pass fuse-elementwise): batch norm folded, but
  // still one loop per op of the optimized graph.
  auto noFuseModel = frontend::loadModelFile(file, frontend::Expansion::Inference);
  ASSERT_TRUE(noFuseModel);
  Graph& gn = *noFuseModel->graph;
  std::map<std::string, Tensor> noFuseParams = optimize(gn, params, {"fuse-elementwise"});
  EXPECT_FALSE(hasFusionGroups(gn));
  auto noFuse = codegen::JitGraph::compile(gn);
  ASSERT_TRUE(noFuse) << noFuse.error().str();
  EXPECT_EQ((*noFuse)->storedNodes(), test::oneLoopPerOp(gn));

  // fused+folded: the whole inference pipeline (ending with fuse-elementwise), the prepare graph.
  auto foldedModel = frontend::loadModelFile(file, frontend::Expansion::Inference);
  ASSERT_TRUE(foldedModel);
  Graph& g = *foldedModel->graph;
  std::map<std::string, Tensor> prepared = optimize(g, params);
  size_t bnBefore = 0, bnAfter = 0;
  for (Node* n : g0.nodes()) bnBefore += n->op() == OpKind::BatchNorm;
  for (Node* n : g.nodes()) bnAfter += n->op() == OpKind::BatchNorm;
  auto folded = codegen::JitGraph::compile(g);
  ASSERT_TRUE(folded) << folded.error().str();
  // Every example has at least one dense layer with an activation or a batch norm to fuse.
  EXPECT_TRUE(hasFusionGroups(g));
  EXPECT_LT((*folded)->storedNodes(), (*noFuse)->storedNodes());
  EXPECT_LE((*folded)->storedNodes(), (*unfused)->storedNodes());
  std::printf("[ variants ] %s: batch norms %zu -> %zu; stored loops unfused %d, folded without "
              "fusion %d, fused+folded %d\n",
              GetParam().c_str(), bnBefore, bnAfter, (*unfused)->storedNodes(),
              (*noFuse)->storedNodes(), (*folded)->storedNodes());

  Interpreter interp(g0);
  for (auto& [k, t] : params) ASSERT_TRUE(interp.setParameter(k, t).isOk());
  std::mt19937_64 rng(5);
  for (int64_t batch : {1, 7}) {
    std::map<std::string, Tensor> inputs;
    for (Node* in : g0.inputs())
      inputs[in->name()] = test::randomTensor(in->result()->type().dtype,
                                              bindBatch(in->result()->type().shape, batch),
                                              {.floatScale = 1.0}, rng);
    auto want = interp.run(inputs);
    ASSERT_TRUE(want) << want.error().str();
    auto a = (*unfused)->run(inputs, params);
    ASSERT_TRUE(a) << a.error().str();
    auto n = (*noFuse)->run(inputs, noFuseParams);
    ASSERT_TRUE(n) << n.error().str();
    auto b = (*folded)->run(inputs, prepared);
    ASSERT_TRUE(b) << b.error().str();
    for (const GraphOutput& out : g0.outputs()) {
      EXPECT_LE(test::scaledError(a->at(out.name), want->at(out.name)), kTolerance)
          << "unfused, " << out.name << " at batch " << batch;
      EXPECT_LE(test::scaledError(n->at(out.name), want->at(out.name)), kTolerance)
          << "folded without fusion, " << out.name << " at batch " << batch;
      EXPECT_LE(test::scaledError(b->at(out.name), want->at(out.name)), kTolerance)
          << "fused+folded, " << out.name << " at batch " << batch;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, PassesCodegen, ::testing::ValuesIn(exampleModels()));

}  // namespace
}  // namespace kiln
