// The safetensors checkpoint format (an 8-byte little-endian header size, a JSON header with
// each tensor's dtype, shape and byte range plus a `__metadata__` map of strings, then the raw
// bytes), encoded and decoded in memory, and the atomic file write checkpoints rely on.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::rt {

/// One stored tensor: dtype "F32", "F64", "I32", "I64", "U8" or "BOOL", shape, little-endian bytes.
struct SafeTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<unsigned char> data;
};

struct SafetensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// The element size of a safetensors dtype, or 0 if unsupported.
int64_t safetensorsElementSize(std::string_view dtype);

/// Encodes `f`: tensors in name order, the header padded with spaces to a multiple of 8 bytes.
std::string encodeSafetensors(const SafetensorsFile& f);

/// Decodes a file's bytes. Returns an empty string or what is wrong: too short, a header size
/// beyond the file, malformed JSON, an unknown dtype, byte ranges that do not match the shape,
/// overlap, leave holes or run past the end (a truncated file).
std::string decodeSafetensors(std::string_view bytes, SafetensorsFile* out);

/// Reads and decodes `path`; errors name the file.
std::string readSafetensors(const std::string& path, SafetensorsFile* out);

/// Writes `data` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory, so a crash leaves either the old file or the new one. Returns an empty string or
/// the error, naming the file.
std::string writeFileAtomically(const std::string& path, std::string_view data);

/// Test hook: when set, writeFileAtomically calls `hook` after writing the first `bytes` bytes
/// of the temporary file (a test makes it exit the process, as a crash or a kill would).
void setAtomicWriteHookForTesting(int64_t bytes, std::function<void()> hook);

}  // namespace kiln::rt
