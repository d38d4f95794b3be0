// Helpers shared by the tests: parsing graph text, building inputs, comparing tensors.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "compiler/interpreter/Interpreter.h"
#include "ir/ProtoIO.h"
#include "ir/Verifier.h"
#include "runtime/KilnABI.h"

namespace kiln::test {

inline std::string sourcePath(const std::string& rel) { return std::string(KILN_SOURCE_DIR) + "/" + rel; }

/// Parses and verifies graph text; fails the test (and returns null) on any error.
inline std::unique_ptr<Graph> parseVerified(const std::string& text, const std::string& file = "test.pbtxt") {
  auto g = parseGraph(text, GraphFormat::Text, file);
  if (!g) {
    ADD_FAILURE() << g.error().str();
    return nullptr;
  }
  Status s = verifyGraph(**g);
  if (!s) {
    ADD_FAILURE() << s.error().str();
    return nullptr;
  }
  return std::move(*g);
}

/// The error text of parsing + verifying `text` (empty if it is valid).
inline std::string verifyError(const std::string& text, const std::string& file = "test.pbtxt") {
  auto g = parseGraph(text, GraphFormat::Text, file);
  if (!g) return g.error().str();
  Status s = verifyGraph(**g);
  return s ? "" : s.error().str();
}

/// Sets the runtime's thread count (kiln_rt_set_num_threads) for one scope and restores the
/// previous one.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(kiln_rt_get_num_threads()) { kiln_rt_set_num_threads(n); }
  ~ScopedThreads() { kiln_rt_set_num_threads(saved_); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int saved_;
};

/// A fresh, empty directory under the system temp directory, NAME_PID, removed with its contents
/// when the test process exits (ctest runs each test in a process of its own), so that neither a
/// passing nor a failing test leaves files behind in /tmp.
inline std::filesystem::path freshTempDir(const std::string& name) {
  namespace fs = std::filesystem;
  struct Cleanup {
    std::vector<fs::path> dirs;
    ~Cleanup() {
      for (const fs::path& d : dirs) {
        std::error_code ec;
        fs::remove_all(d, ec);
      }
    }
  };
  static Cleanup cleanup;
  fs::path d = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  cleanup.dirs.push_back(d);
  return d;
}

}  // namespace kiln::test
