// The damaged-checkpoint corpus (tests/bad_checkpoints): every file fails to restore with the
// error expected.txt gives, naming the file; the undamaged checkpoint restores.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "TestUtil.h"
#include "compiler/training/Trainer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

TEST(BadCheckpointTest, EveryFileFailsWithItsExpectedError) {
  const fs::path dir = test::sourcePath("tests/bad_checkpoints");
  auto m = loadTrainingModel((dir / "model.model.pbtxt").string(), "", nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  std::ifstream list(dir / "expected.txt");
  std::string line;
  std::set<std::string> listed;
  while (std::getline(list, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t colon = line.find(": ");
    ASSERT_NE(colon, std::string::npos) << line;
    std::string file = line.substr(0, colon), want = line.substr(colon + 2);
    listed.insert(file);
    const std::string path = (dir / file).string();
    InterpreterExecutor exec(*m->stepGraph, /*updatesState=*/true, 0);
    ASSERT_TRUE(exec.initialize(0));
    auto c = readCheckpoint(path);
    Status s = c ? restoreAllState(*c, path, m->fingerprint, exec) : Status(c.error());
    ASSERT_FALSE(s) << file << " restored";
    EXPECT_NE(s.error().str().find(path), std::string::npos) << s.error().str();
    EXPECT_NE(s.error().str().find(want), std::string::npos) << file << ": " << s.error().str();
  }
  // Every damaged file is listed (a new one without an expectation fails here).
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors" && e.path().filename() != "good.safetensors") {
      EXPECT_TRUE(listed.count(e.path().filename().string())) << e.path() << " has no line in expected.txt";
    }
  }
  EXPECT_GE(listed.size(), 14u);

  InterpreterExecutor exec(*m->stepGraph, /*updatesState=*/true, 0);
  ASSERT_TRUE(exec.initialize(0));
  const std::string good = (dir / "good.safetensors").string();
  auto c = readCheckpoint(good);
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_TRUE(restoreAllState(*c, good, m->fingerprint, exec));
  const std::map<std::string, Tensor> state = exec.state();
  for (const auto& [name, t] : c->tensors) {
    const Tensor& now = state.at(name);
    EXPECT_EQ(std::memcmp(now.raw(), t.raw(), static_cast<size_t>(t.byteSize())), 0) << name;
  }
}

}  // namespace
}  // namespace kiln
