// NumPy's .npy format (versions 1.0, 2.0 and 3.0, C order), encoded and decoded in memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::rt {

/// An array as stored in a .npy file: its dtype descriptor ("<f4", "<f8", "<i4", "<i8", "|b1", "|u1"),
/// its shape and its raw little-endian, row-major bytes.
struct NpyArray {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<unsigned char> data;
};

/// Decodes a .npy file's bytes. Returns an empty string, or what is wrong (not .npy, an
/// unsupported dtype, Fortran order, a size that does not match the shape, ...).
std::string decodeNpy(std::string_view bytes, NpyArray* out);

/// Encodes an array as .npy (version 1.0; 2.0 when the header needs it).
std::string encodeNpy(const std::string& descr, const std::vector<int64_t>& shape,
                      const void* data, size_t byteSize);

/// The element size of a supported descriptor, or 0.
int64_t npyElementSize(std::string_view descr);

}  // namespace kiln::rt
