// IDX files: a magic number (0, 0, type, rank), rank big-endian int32 sizes, then the data.
#include "runtime/Idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace kiln::rt {

std::string readIdx(const std::string& path, IdxArray* out) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return path + ": cannot open: " + std::strerror(errno ? errno : ENOENT);
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(f, gzclose);
  auto readExactly = [&](void* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      int r = gzread(f, static_cast<char*>(buf) + got, static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30)));
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  };
  unsigned char magic[4];
  if (!readExactly(magic, 4)) return path + ": empty or unreadable (not an IDX file)";
  if (magic[0] != 0 || magic[1] != 0) return path + ": not an IDX file (bad magic number)";
  if (magic[2] != 0x08)
    return path + ": IDX element type 0x" + std::to_string(magic[2]) + " is not supported (only unsigned bytes)";
  int rank = magic[3];
  if (rank < 1 || rank > 4) return path + ": IDX rank " + std::to_string(rank) + " is not supported";
  out->shape.clear();
  uint64_t count = 1;
  for (int k = 0; k < rank; ++k) {
    unsigned char b[4];
    if (!readExactly(b, 4)) return path + ": truncated IDX header";
    int64_t d = (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    if (d <= 0 || d > (int64_t{1} << 31)) return path + ": IDX dimension " + std::to_string(d) + " is invalid";
    count *= static_cast<uint64_t>(d);
    if (count > (uint64_t{1} << 34)) return path + ": IDX array too large";
    out->shape.push_back(d);
  }
  out->data.resize(count);
  if (!readExactly(out->data.data(), count))
    return path + ": truncated IDX data (expected " + std::to_string(count) + " bytes)";
  char extra;
  if (gzread(f, &extra, 1) > 0) return path + ": trailing bytes after the IDX data";
  return {};
}

}  // namespace kiln::rt
