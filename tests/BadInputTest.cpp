// The bad-input corpus: every file in tests/bad/ must fail to parse or verify, with the error
// its expectation names.
//
// A .pbtxt file starts with one or more lines `# expect: <substring>`; each substring must occur
// in the error text, and the first starts with the file's name (and line, if the error has
// one). An optional `# expect-diagnostics: N` line says how many diagnostics there
// must be (to check that independent errors are all reported and cascades are not). Binary .pb
// files have their expectations in binary_expectations.txt, as lines `file.pb: substring`.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "TestUtil.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

struct Expectation {
  std::vector<std::string> substrings;
  int diagnostics = -1;  // -1: any number
};

fs::path badDir() { return fs::path(test::sourcePath("tests/bad")); }

std::vector<fs::path> corpusFiles() {
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(badDir())) {
    std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".pbtxt" || ext == ".pb")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Expectation textExpectation(const fs::path& file) {
  Expectation ex;
  std::ifstream in(file);
  std::string line;
  const std::string expect = "# expect: ", count = "# expect-diagnostics: ";
  while (std::getline(in, line)) {
    if (line.starts_with(expect)) ex.substrings.push_back(line.substr(expect.size()));
    else if (line.starts_with(count)) ex.diagnostics = std::stoi(line.substr(count.size()));
    else break;
  }
  return ex;
}

std::map<std::string, Expectation> binaryExpectations() {
  std::map<std::string, Expectation> out;
  std::ifstream in(badDir() / "binary_expectations.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sep = line.find(": ");
    if (sep == std::string::npos) {
      ADD_FAILURE() << "binary_expectations.txt: bad line: " << line;
      continue;
    }
    out[line.substr(0, sep)].substrings.push_back(line.substr(sep + 2));
  }
  return out;
}

// The error text of reading and verifying `path`, with the number of diagnostics; empty if
// the file is valid.
std::pair<std::string, size_t> errorOf(const fs::path& path) {
  auto g = readGraphFile(path.string());
  if (!g) return {g.error().str(), g.error().diagnostics().size()};
  Status s = verifyGraph(**g);
  if (s) return {"", 0};
  return {s.error().str(), s.error().diagnostics().size()};
}

TEST(BadInputTest, CorpusIsNotEmpty) {
  // Guards against the directory walk silently finding nothing (a moved folder, a bad path).
  EXPECT_GE(corpusFiles().size(), 40u) << "in " << badDir();
}

TEST(BadInputTest, EveryFileFailsWithItsExpectedError) {
  std::map<std::string, Expectation> binary = binaryExpectations();
  size_t checked = 0;
  for (const fs::path& file : corpusFiles()) {
    const std::string name = file.filename().string();
    SCOPED_TRACE(name);
    Expectation ex;
    if (file.extension() == ".pb") {
      auto it = binary.find(name);
      ASSERT_NE(it, binary.end()) << name << " has no line in binary_expectations.txt";
      ex = it->second;
      binary.erase(it);
    } else {
      ex = textExpectation(file);
    }
    ASSERT_FALSE(ex.substrings.empty()) << name << " has no '# expect: ' line";
    auto [error, count] = errorOf(file);
    ASSERT_FALSE(error.empty()) << name << " was accepted";
    EXPECT_TRUE(ex.substrings[0].starts_with(name + ":"))
        << "the first expectation should start with the file name (and line, if the error has "
           "one): " << ex.substrings[0];
    for (const std::string& sub : ex.substrings) {
      EXPECT_NE(error.find(sub), std::string::npos)
          << "expected: " << sub << "\nactual error:\n" << error;
    }
    if (ex.diagnostics >= 0) {
      EXPECT_EQ(count, static_cast<size_t>(ex.diagnostics)) << "actual error:\n" << error;
    }
    ++checked;
  }
  for (const auto& [name, ex] : binary) ADD_FAILURE() << "binary_expectations.txt names missing " << name;
  EXPECT_GE(checked, 40u);
}

TEST(BadInputTest, TextErrorsCarryFileLineAndColumn) {
  // A protobuf syntax error reports where it is, like every other text error.
  std::string err = test::verifyError("name: \"t\"\ninput { name: \"x\" shape { dim: -1 }\n",
                                      "short.pbtxt");
  EXPECT_NE(err.find("short.pbtxt:3:1: error: "), std::string::npos) << err;
}

}  // namespace
}  // namespace kiln
