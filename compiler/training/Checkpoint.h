// Checkpoints: every piece of training state (parameters, optimizer slots, batch-norm
// statistics, the step counter) as a safetensors file with the run's position in its metadata;
// the model fingerprint that resuming checks; a checkpoint directory that keeps the last N and
// the best; and partial restore (regex, renames) for reusing pretrained layers.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/interpreter/Tensor.h"
#include "compiler/training/StepExecutor.h"
#include "ir/Graph.h"

namespace kiln {

struct Checkpoint {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Metadata keys every checkpoint Kiln writes carries.
inline constexpr const char* kFingerprintKey = "kiln.fingerprint";
inline constexpr const char* kFormatKey = "format";  // "kiln" (the Python library reads "pt" etc.)

/// A hash of the graph's text (the op-level inference expansion): equal for the same model file
/// however it is trained, different when a layer, shape or initializer changes. 16 hex digits.
std::string modelFingerprint(const Graph& inference);

/// Writes `c` to `path` atomically (temporary file, fsync, rename).
Status writeCheckpoint(const std::string& path, const Checkpoint& c);
/// Reads a checkpoint; errors name the file and say what is wrong with it.
Expected<Checkpoint> readCheckpoint(const std::string& path);

/// Sets every piece of `exec`'s state from `c` (resume): each must be present with the same
/// dtype and shape; the fingerprint must equal `fingerprint`. Errors name the checkpoint, the
/// tensor and both shapes.
Status restoreAllState(const Checkpoint& c, const std::string& path, const std::string& fingerprint,
                       StepExecutor& exec);

/// One --rename FROM=TO: a checkpoint name's prefix FROM is read as TO.
struct Rename {
  std::string from, to;
};
struct RestoreReport {
  std::vector<std::string> restored;     // state names, as the model calls them
  std::vector<std::string> initialized;  // state the checkpoint did not provide
  std::vector<std::string> skippedSlots; // matched optimizer slots the model has no place for
};
/// Restores the checkpoint tensors whose names fully match `pattern` (ECMAScript regex), renamed
/// by the first rename whose FROM prefixes them, into `exec`'s state. A match with no state of
/// that name (other than an optimizer slot of a restored parameter, which is skipped and
/// reported), a pattern that matches nothing, and a shape or dtype mismatch (naming both
/// shapes) are errors.
Expected<RestoreReport> restoreMatching(const Checkpoint& c, const std::string& path, const std::string& pattern,
                                        const std::vector<Rename>& renames, StepExecutor& exec);

/// A directory of checkpoints named ckpt-step-NNNNNNNN.safetensors plus best.safetensors.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}
  /// Creates the directory if needed.
  Status prepare() const;
  /// Writes the checkpoint of step `step` and deletes all but the newest `keep` step files.
  Expected<std::string> save(const Checkpoint& c, int64_t step) const;
  Expected<std::string> saveBest(const Checkpoint& c) const;
  /// The newest step checkpoint, or "" when there is none.
  std::string latest() const;
  std::string bestPath() const;
  const std::string& dir() const { return dir_; }

 private:
  std::vector<std::pair<int64_t, std::string>> list() const;
  std::string dir_;
  int keep_;
};

}  // namespace kiln
