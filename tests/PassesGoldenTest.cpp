// Golden tests for every graph pass: tests/golden/<pass>/<case>.pbtxt is an input graph whose
// header names the passes to run ("# passes: a,b"), and <case>.expected.pbtxt the graph text
// they must produce. Case "positive" must change the graph; "negative" (a near miss the pass
// must not rewrite) and "nochange" (nothing for it to do) must leave it alone. Every case also
// runs through the interpreter before and after on random inputs and parameters, and the
// outputs must agree. KILN_UPDATE_GOLDEN=1 rewrites the expected files instead of comparing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "PassesTestUtil.h"
#include "TestUtil.h"
#include "compiler/interpreter/Interpreter.h"
#include "compiler/passes/Pass.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

struct GoldenCase {
  std::string pass, name;
  fs::path input, expected;
};

// gtest prints a failing parameter with this (instead of its bytes).
void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.input.string(); }

std::vector<GoldenCase> allCases() {
  std::vector<GoldenCase> out;
  fs::path root = test::sourcePath("tests/golden");
  for (const auto& dir : fs::directory_iterator(root)) {
    if (!dir.is_directory()) continue;
    for (const char* c : {"positive", "negative", "nochange"}) {
      GoldenCase gc{dir.path().filename().string(), c, dir.path() / (std::string(c) + ".pbtxt"),
                    dir.path() / (std::string(c) + ".expected.pbtxt")};
      out.push_back(gc);
    }
  }
  std::sort(out.begin(), out.end(),
            [](auto& a, auto& b) { return a.pass + a.name < b.pass + b.name; });
  return out;
}

std::string readText(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// "# key: value" header lines of a case file.
std::string header(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("# " + key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 3);
      while (!v.empty() && v.front() == ' ') v.erase(v.begin());
      return v;
    }
  return "";
}

class PassesGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(PassesGolden, Matches) {
  const GoldenCase& c = GetParam();
  ASSERT_TRUE(fs::exists(c.input)) << "every pass needs a " << c.name << " case: " << c.input;
  std::string text = readText(c.input);
  std::string passList = header(text, "passes");
  ASSERT_FALSE(passList.empty()) << c.input << ": no '# passes:' header";
  auto g = test::parseVerified(text, c.input.filename().string());
  ASSERT_TRUE(g);
  auto before = test::parseVerified(text, c.input.filename().string());
  ASSERT_TRUE(before);

  passes::PassContext ctx;
  ctx.freezeRegex = header(text, "freeze");
  frontend::ClippingSpec clip;
  std::vector<Value*> grads;
  if (std::string spec = header(text, "clip"); !spec.empty()) {
    std::istringstream in(spec);
    std::string mode;
    in >> mode >> clip.threshold;
    clip.mode = mode == "value"         ? frontend::ClipMode::Value
                : mode == "norm"        ? frontend::ClipMode::Norm
                : mode == "global_norm" ? frontend::ClipMode::GlobalNorm
                                        : frontend::ClipMode::None;
    std::istringstream names(header(text, "gradients"));
    for (std::string n; std::getline(names, n, ',');) {
      Value* v = g->findValue(n);
      ASSERT_TRUE(v) << "no gradient tensor " << n;
      grads.push_back(v);
    }
    ctx.clipping = &clip;
    ctx.gradients = &grads;
  }

  passes::PassManagerOptions opts;
  opts.verifyEach = true;
  passes::PassManager pm(opts);
  std::istringstream names(passList);
  for (std::string n; std::getline(names, n, ',');) ASSERT_TRUE(pm.add(n).isOk()) << n;
  Expected<bool> changed = pm.run(*g, ctx);
  ASSERT_TRUE(changed) << changed.error().str();
  EXPECT_EQ(*changed, c.name == "positive")
      << c.input << ": positive cases must change the graph, others not";
  ASSERT_TRUE(verifyGraph(*g).isOk());

  std::string got = "# " + c.pass + "/" + c.name + " after: " + passList + "\n" + graphToText(*g);
  if (std::getenv("KILN_UPDATE_GOLDEN")) {
    std::ofstream(c.expected) << got;
  } else {
    ASSERT_TRUE(fs::exists(c.expected))
        << c.expected << " is missing (run with KILN_UPDATE_GOLDEN=1)";
    EXPECT_EQ(got, readText(c.expected))
        << "golden mismatch for " << c.input << " (KILN_UPDATE_GOLDEN=1 rewrites it after review)";
  }

  // Clipping changes the step's values by design; its equivalence test is in PassesTest.
  if (c.pass == "insert-clipping" && c.name == "positive") return;
  test::expectSameOutputs(*before, *g, /*seed=*/7, /*batch=*/3);
}

INSTANTIATE_TEST_SUITE_P(All, PassesGolden, ::testing::ValuesIn(allCases()), [](const auto& info) {
  std::string n = info.param.pass + "_" + info.param.name;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

}  // namespace
}  // namespace kiln
