// The bad-model corpus: every file in tests/bad_models/ is a layer-level model with one mistake,
// and loading it (as `kiln check` does) must fail with the error its first line names:
// `# expect: <file>:<line>:<col>: error: <message>` (more `# expect:` lines may follow).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "TestUtil.h"
#include "compiler/driver/Commands.h"
#include "frontend/ModelFile.h"
#include "ir/ProtoIO.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> corpus() {
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(test::sourcePath("tests/bad_models")))
    if (e.is_regular_file() && e.path().extension() == ".pbtxt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> expectations(const fs::path& file) {
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  const std::string tag = "# expect: ";
  while (std::getline(in, line) && line.starts_with(tag)) out.push_back(line.substr(tag.size()));
  return out;
}

TEST(BadModelTest, CorpusHasOneFilePerMistake) {
  // Guards against the directory walk silently finding nothing.
  EXPECT_GE(corpus().size(), 15u);
}

TEST(BadModelTest, EveryFileFailsWithItsExpectedErrorAtItsLine) {
  for (const fs::path& file : corpus()) {
    const std::string name = file.filename().string();
    SCOPED_TRACE(name);
    std::vector<std::string> expected = expectations(file);
    ASSERT_FALSE(expected.empty()) << name << " has no '# expect: ' first line";
    auto m = driver::loadAnyModel(file.string());
    ASSERT_FALSE(m) << name << " was accepted";
    const std::string error = m.error().str();
    // The error is the model format's, not the op-level graph's (which knows no layers).
    EXPECT_EQ(error.find("kiln.proto.Graph"), std::string::npos) << error;
    for (const std::string& e : expected) {
      // Each expectation names the file and the line (and the column) of the mistake.
      EXPECT_TRUE(
          std::regex_search(e, std::regex("^" + std::regex_replace(name, std::regex("\\."), "\\.") +
                                          ":[0-9]+:[0-9]+: error: ")))
          << "the expectation should start with file:line:col: " << e;
      EXPECT_NE(error.find(e), std::string::npos) << "expected: " << e << "\nactual:\n" << error;
    }
  }
}

TEST(BadModelTest, TheSameMistakesFailTheEvaluationExpansion) {
  // The evaluation graph is built from the same checked model: no file slips through there.
  for (const fs::path& file : corpus()) {
    SCOPED_TRACE(file.filename().string());
    EXPECT_FALSE(driver::loadAnyModel(file.string(), frontend::Expansion::Evaluation));
  }
}

TEST(BadModelTest, TruncatedAndMutatedModelsFailCleanly) {
  // Every prefix of a model file, and the file with one byte changed, either loads or fails
  // with a located error; none crashes (the sanitizer build checks memory too).
  auto text = readFileBytes(
      test::sourcePath("examples/fashion_regularized/fashion_regularized.model.pbtxt"));
  ASSERT_TRUE(text);
  auto tryLoad = [](const std::string& data) {
    if (!frontend::isModelData(data, GraphFormat::Text)) return;
    auto pm = frontend::parseModel(data, GraphFormat::Text, "m.pbtxt");
    if (!pm) {
      EXPECT_TRUE(pm.error().str().starts_with("m.pbtxt:")) << pm.error().str();
      return;
    }
    auto m = frontend::expandModel(*pm, frontend::Expansion::Evaluation);
    if (!m) {
      EXPECT_TRUE(m.error().str().starts_with("m.pbtxt")) << m.error().str();
    }
  };
  for (size_t n = 0; n <= text->size(); n += 7) tryLoad(text->substr(0, n));
  const char replacements[] = {'{', '}', '"', ':', '-', '0', '9', 'x', ' ', '\n', '#', '/'};
  uint64_t state = 12345;
  for (int i = 0; i < 600; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;  // LCG: a fixed sequence
    std::string mutated = *text;
    mutated[(state >> 33) % mutated.size()] = replacements[(state >> 17) % sizeof replacements];
    tryLoad(mutated);
  }
  // Binary: the serialized model cut short, or with a byte flipped.
  auto pm = frontend::parseModel(*text, GraphFormat::Text, "m.pbtxt");
  ASSERT_TRUE(pm);
  std::string bin = pm->model.SerializeAsString();
  for (size_t n = 0; n < bin.size(); n += 3) {
    std::string cut = bin.substr(0, n);
    if (!frontend::isModelData(cut, GraphFormat::Binary)) continue;
    auto b = frontend::parseModel(cut, GraphFormat::Binary, "m.pb");
    if (b) (void)frontend::expandModel(*b);
  }
}

}  // namespace
}  // namespace kiln
