// IDX files (MNIST, Fashion-MNIST), gzipped or not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::rt {

/// An unsigned-byte IDX array: its shape (e.g. [60000, 28, 28]) and its bytes, row-major.
struct IdxArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Reads `path` (gzip-compressed or plain; zlib tells them apart). Returns an empty string, or
/// what is wrong, naming the file: missing, truncated, not IDX, or not unsigned bytes.
std::string readIdx(const std::string& path, IdxArray* out);

}  // namespace kiln::rt
