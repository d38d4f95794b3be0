// The safetensors codec: round trip, every kind of damage a clear error, and an atomic write
// that a crash in the middle leaves the previous file intact.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "TestUtil.h"
#include "runtime/Safetensors.h"

namespace kiln::rt {
namespace {

namespace fs = std::filesystem;

SafetensorsFile sample(float scale) {
  SafetensorsFile f;
  SafeTensor k{"F32", {2, 3}, std::vector<unsigned char>(24)};
  for (int i = 0; i < 6; ++i) {
    float v = scale * static_cast<float>(i) - 1.5f;
    std::memcpy(k.data.data() + 4 * i, &v, 4);
  }
  f.tensors["hidden1/kernel"] = k;
  f.tensors["train/step"] = SafeTensor{"F64", {}, std::vector<unsigned char>(8, 0x40)};
  f.tensors["b\"q\\uote"] = SafeTensor{"I64", {1}, std::vector<unsigned char>(8, 7)};
  f.metadata["epoch"] = "3";
  f.metadata["note"] = "tab\there \"quoted\" \x01";
  return f;
}

TEST(SafetensorsTest, RoundTripsTensorsAndMetadata) {
  SafetensorsFile f = sample(1), g;
  std::string bytes = encodeSafetensors(f);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian hosts only (x86-64, AArch64)
  EXPECT_EQ((8 + n) % 8, 0u) << "data starts aligned";
  EXPECT_EQ(bytes[8], '{');
  ASSERT_EQ(decodeSafetensors(bytes, &g), "");
  EXPECT_EQ(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), 3u);
  for (const auto& [name, t] : f.tensors) {
    EXPECT_EQ(g.tensors[name].dtype, t.dtype);
    EXPECT_EQ(g.tensors[name].shape, t.shape);
    EXPECT_EQ(g.tensors[name].data, t.data);
  }
  // A file written by the Python safetensors library (the header text it makes) reads too.
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})";
  std::string py(8, '\0');
  py[0] = static_cast<char>(header.size());
  py += header + std::string(8, '\0');
  ASSERT_EQ(decodeSafetensors(py, &g), "");
  EXPECT_EQ(g.metadata["format"], "pt");
  EXPECT_EQ(g.tensors["w"].shape, (std::vector<int64_t>{2}));
}

TEST(SafetensorsTest, DamageIsAClearError) {
  std::string good = encodeSafetensors(sample(1));
  SafetensorsFile g;
  auto err = [&](std::string bytes) { return decodeSafetensors(bytes, &g); };
  EXPECT_NE(err("abc").find("too short"), std::string::npos);
  EXPECT_NE(err(good.substr(0, good.size() - 5)).find("truncated"), std::string::npos) << err(good.substr(0, good.size() - 5));
  EXPECT_NE(err(good.substr(0, 40)).find("runs past the end"), std::string::npos);
  std::string extra = good + "xyz";
  EXPECT_NE(err(extra).find("3 bytes after the last tensor"), std::string::npos);
  std::string notJson = good;
  notJson[8] = '[';
  EXPECT_NE(err(notJson).find("not a safetensors file"), std::string::npos);
  // A shape that does not match the byte range (a mismatched file).
  std::string h = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  std::string bad(8, '\0');
  bad[0] = static_cast<char>(h.size());
  bad += h + std::string(8, '\0');
  EXPECT_NE(err(bad).find("tensor 'w': 8 bytes for F32[3 elements], expected 12"), std::string::npos) << err(bad);
  h = R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})";
  bad = std::string(8, '\0');
  bad[0] = static_cast<char>(h.size());
  bad += h + std::string(8, '\0');
  EXPECT_NE(err(bad).find("unsupported dtype 'Q7'"), std::string::npos) << err(bad);
  fs::path missing = fs::temp_directory_path() / "kiln_no_such.safetensors";
  EXPECT_NE(readSafetensors(missing.string(), &g).find("kiln_no_such.safetensors: cannot open"), std::string::npos);
}

TEST(SafetensorsTest, ACrashMidWriteLeavesThePreviousFileIntact) {
  fs::path d = test::freshTempDir("kiln_atomic");
  const std::string path = (d / "ckpt.safetensors").string();
  const std::string first = encodeSafetensors(sample(1)), second = encodeSafetensors(sample(2));
  ASSERT_EQ(writeFileAtomically(path, first), "");
  // The child process dies (as kill -9 would) after writing half of the new checkpoint.
  EXPECT_EXIT(
      {
        setAtomicWriteHookForTesting(static_cast<int64_t>(second.size() / 2), [] { ::_exit(9); });
        (void)writeFileAtomically(path, second);
        ::_exit(0);
      },
      ::testing::ExitedWithCode(9), "");
  SafetensorsFile g;
  ASSERT_EQ(readSafetensors(path, &g), "");
  EXPECT_EQ(encodeSafetensors(g), first) << "the previous checkpoint is intact";
  // The half-written temporary file is there, and it is what a non-atomic write would have left.
  int partial = 0;
  for (const auto& e : fs::directory_iterator(d)) {
    if (e.path().string().find(".tmp.") == std::string::npos) continue;
    ++partial;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str().size(), second.size() / 2);
    EXPECT_NE(decodeSafetensors(ss.str(), &g), "") << "a torn file does not decode";
  }
  EXPECT_EQ(partial, 1);
  ASSERT_EQ(writeFileAtomically(path, second), "");
  ASSERT_EQ(readSafetensors(path, &g), "");
  EXPECT_EQ(encodeSafetensors(g), second);
}

}  // namespace
}  // namespace kiln::rt
