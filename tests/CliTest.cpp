// The kiln command's subcommands, called as a user would (arguments in, files and status out).
#include <gtest/gtest.h>

#include <filesystem>

#include "TestUtil.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/Summary.h"

namespace kiln::driver {
namespace {

namespace fs = std::filesystem;
const std::string kMlp = test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt");

fs::path tempDir(const std::string& name) {
  return test::freshTempDir("kiln_cli_" + name);
}

TEST(CliTest, CheckPrintsTheBookTotals) {
  auto g = loadModel(kMlp);
  ASSERT_TRUE(g) << g.error().str();
  std::string s = summarizeGraph(**g);
  EXPECT_NE(s.find("Total params: 268,250\n"), std::string::npos) << s;
  EXPECT_NE(s.find("Trainable params: 267,430\n"), std::string::npos) << s;
  EXPECT_NE(s.find("Non-trainable params: 820\n"), std::string::npos) << s;
  EXPECT_NE(s.find("hidden1/matmul (matmul)            (None, 300)           235,200"), std::string::npos) << s;
  EXPECT_EQ(runCheck({kMlp, "--quiet"}), 0);
}

TEST(CliTest, CheckFailsOnBadModelsAndArguments) {
  fs::path d = tempDir("check");
  std::string bad = (d / "bad.pbtxt").string();
  ASSERT_TRUE(writeFileAtomic(bad, "input { name: \"x\" shape { dim: 2 } }\n"
                                   "node { name: \"y\" op: \"relux\" input: \"x\" }\n"));
  EXPECT_EQ(runCheck({bad}), 1);
  EXPECT_EQ(runCheck({(d / "missing.pbtxt").string()}), 1);
  EXPECT_EQ(runCheck({}), 2);
  EXPECT_EQ(runCheck({kMlp, "--bogus"}), 2);
  EXPECT_EQ(runCheck({"--help"}), 0);
}

TEST(CliTest, RunWritesOutputsAsNpy) {
  fs::path d = tempDir("run");
  Tensor x(DType::Float32, {3, 784});
  for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] = static_cast<float>((i * 37) % 255) / 255.0f;
  std::string xPath = (d / "x.npy").string();
  ASSERT_TRUE(writeTensorNpy(x, xPath));
  ASSERT_EQ(runRun({kMlp, "--input", "x=" + xPath, "--output-dir", (d / "out").string(), "--seed", "3"}), 0);
  auto logits = readTensorNpy((d / "out" / "logits.npy").string());
  ASSERT_TRUE(logits) << logits.error().str();
  EXPECT_EQ(logits->type().str(), "float32[3,10]");
  // The same run through the library gives the same numbers (the file holds the real output).
  auto g = loadModel(kMlp);
  Interpreter interp(**g);
  ASSERT_TRUE(interp.initializeParameters(3));
  auto out = interp.run({{"x", x}});
  ASSERT_TRUE(out) << out.error().str();
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(logits->data<float>()[i], out->at("logits").data<float>()[i]);
}

TEST(CliTest, RunNamesTheInputOnShapeAndDtypeMismatch) {
  fs::path d = tempDir("runbad");
  Tensor wrongShape(DType::Float32, {2, 100});
  ASSERT_TRUE(writeTensorNpy(wrongShape, (d / "a.npy").string()));
  auto g = loadModel(kMlp);
  Interpreter interp(**g);
  ASSERT_TRUE(interp.initializeParameters(0));
  auto r = interp.run({{"x", wrongShape}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("input 'x' is float32[2,100], expected float32[-1,784]"), std::string::npos)
      << r.error().str();
  auto r2 = interp.run({{"x", Tensor(DType::Float64, {2, 784})}});
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().str().find("input 'x' is float64[2,784], expected float32[-1,784]"), std::string::npos)
      << r2.error().str();
  EXPECT_EQ(runRun({kMlp, "--input", "x=" + (d / "a.npy").string(), "--output-dir", d.string()}), 1);
  EXPECT_EQ(runRun({kMlp, "--input", "y=" + (d / "a.npy").string()}), 1);
  EXPECT_EQ(runRun({kMlp, "--input", "x=" + (d / "nope.npy").string()}), 1);
  EXPECT_EQ(runRun({kMlp}), 1) << "a missing input is an error";
}

}  // namespace
}  // namespace kiln::driver
