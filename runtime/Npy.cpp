// NumPy's .npy format: a magic string, a version, a Python-dict header, then the raw data.
#include "runtime/Npy.h"

#include <cctype>
#include <cstring>
#include <limits>

namespace kiln::rt {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The value text after `'key':` in the header dict, up to the matching end; empty if absent.
std::string_view dictValue(std::string_view header, std::string_view key) {
  std::string quoted = "'" + std::string(key) + "'";
  size_t k = header.find(quoted);
  if (k == std::string_view::npos) return {};
  size_t colon = header.find(':', k + quoted.size());
  if (colon == std::string_view::npos) return {};
  std::string_view rest = header.substr(colon + 1);
  rest = trim(rest);
  if (rest.empty()) return {};
  if (rest.front() == '(') {
    size_t close = rest.find(')');
    return close == std::string_view::npos ? std::string_view{} : rest.substr(0, close + 1);
  }
  if (rest.front() == '\'' || rest.front() == '"') {
    size_t close = rest.find(rest.front(), 1);
    return close == std::string_view::npos ? std::string_view{} : rest.substr(0, close + 1);
  }
  size_t end = rest.find_first_of(",}");
  return trim(rest.substr(0, end));
}

}  // namespace

int64_t npyElementSize(std::string_view descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<f8" || descr == "<i8") return 8;
  if (descr == "|b1" || descr == "|u1") return 1;  // uint8: images saved by NumPy
  return 0;
}

std::string decodeNpy(std::string_view bytes, NpyArray* out) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    return "not a NumPy .npy file (no \\x93NUMPY magic)";
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return "truncated .npy header";
    headerLen = 0;
    for (int i = 3; i >= 0; --i) headerLen = (headerLen << 8) | static_cast<unsigned char>(bytes[8 + i]);
    headerStart = 12;
  } else {
    return "unsupported .npy version " + std::to_string(major);
  }
  if (headerLen > bytes.size() - headerStart) return "truncated .npy header";
  std::string_view header = bytes.substr(headerStart, headerLen);

  std::string_view descr = dictValue(header, "descr");
  if (descr.size() < 2) return "the .npy header has no 'descr'";
  out->descr = std::string(descr.substr(1, descr.size() - 2));
  if (out->descr == "<f4" || out->descr == "=f4") out->descr = "<f4";
  if (out->descr == "=f8") out->descr = "<f8";
  if (out->descr == "=i4") out->descr = "<i4";
  if (out->descr == "=i8") out->descr = "<i8";
  if (out->descr == "?" || out->descr == "|?") out->descr = "|b1";
  int64_t elem = npyElementSize(out->descr);
  if (elem == 0)
    return "unsupported .npy dtype '" + out->descr +
           "' (supported: <f4 float32, <f8 float64, <i4 int32, <i8 int64, |b1 bool, |u1 uint8)";

  std::string_view fortran = dictValue(header, "fortran_order");
  if (fortran == "True") return "Fortran-order .npy arrays are not supported (save with C order)";
  if (fortran != "False") return "the .npy header has no valid 'fortran_order'";

  std::string_view shape = dictValue(header, "shape");
  if (shape.size() < 2 || shape.front() != '(') return "the .npy header has no valid 'shape'";
  out->shape.clear();
  std::string_view inner = shape.substr(1, shape.size() - 2);
  int64_t count = 1;
  while (true) {
    inner = trim(inner);
    if (inner.empty()) break;
    size_t comma = inner.find(',');
    std::string_view tok = trim(inner.substr(0, comma));
    if (tok.empty() || tok.size() > 12) return "the .npy header has a bad dimension in 'shape'";
    int64_t d = 0;
    for (char c : tok) {
      if (c == 'L') break;  // Python 2 longs
      if (!std::isdigit(static_cast<unsigned char>(c))) return "the .npy header has a bad dimension in 'shape'";
      d = d * 10 + (c - '0');
    }
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / elem / d)
      return "the .npy shape is too large";
    count *= d;
    out->shape.push_back(d);
    if (comma == std::string_view::npos) break;
    inner.remove_prefix(comma + 1);
  }
  size_t dataStart = headerStart + headerLen;
  uint64_t want = static_cast<uint64_t>(count) * static_cast<uint64_t>(elem);
  if (bytes.size() - dataStart != want)
    return "the .npy data has " + std::to_string(bytes.size() - dataStart) + " bytes but shape and dtype need " +
           std::to_string(want);
  out->data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(dataStart), bytes.end());
  return {};
}

std::string encodeNpy(const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                      size_t byteSize) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) dict += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dict += ",";  // Python's one-element tuple
  dict += "), }";
  // Pad with spaces so that the data starts on a 64-byte boundary, newline-terminated.
  bool v2 = dict.size() + 11 > 65535;
  size_t prefix = v2 ? 12 : 10;
  size_t total = prefix + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  size_t len = dict.size();
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (v2) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  out += dict;
  out.append(static_cast<const char*>(data), byteSize);
  return out;
}

}  // namespace kiln::rt
