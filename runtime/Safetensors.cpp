// safetensors: the header is a flat JSON object, so a small parser for exactly that suffices.
#include "runtime/Safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::rt {
namespace {

// Headers are a few kilobytes; the reference implementation refuses more than 100 MB.
constexpr uint64_t kMaxHeader = 100u << 20;

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A recursive-descent reader for the subset of JSON safetensors headers use: objects, arrays,
// strings and integers.
class Json {
 public:
  explicit Json(std::string_view s) : s_(s) {}
  std::string error;

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool fail(const std::string& what) {
    if (error.empty()) error = "malformed header JSON at byte " + std::to_string(i_) + ": " + what;
    return false;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  bool atEnd() {
    ws();
    return i_ == s_.size();
  }
  bool string(std::string* out) {
    if (!eat('"')) return fail("expected a string");
    out->clear();
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) return fail("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': *out += e; break;
        case 'n': *out += '\n'; break;
        case 't': *out += '\t'; break;
        case 'r': *out += '\r'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return fail("short \\u escape");
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s_[i_++];
            v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (v < 0x80) {
            *out += static_cast<char>(v);
          } else if (v < 0x800) {
            *out += static_cast<char>(0xC0 | (v >> 6));
            *out += static_cast<char>(0x80 | (v & 0x3F));
          } else {
            *out += static_cast<char>(0xE0 | (v >> 12));
            *out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
            *out += static_cast<char>(0x80 | (v & 0x3F));
          }
          break;
        }
        default: return fail("bad escape");
      }
    }
    if (i_ >= s_.size()) return fail("unterminated string");
    ++i_;
    return true;
  }
  bool integer(int64_t* out) {
    ws();
    size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (start == i_ || i_ - start > 18) return fail("expected a non-negative integer");
    *out = std::stoll(std::string(s_.substr(start, i_ - start)));
    return true;
  }
  bool intArray(std::vector<int64_t>* out) {
    out->clear();
    if (!eat('[')) return fail("expected '['");
    if (eat(']')) return true;
    do {
      int64_t v;
      if (!integer(&v)) return false;
      out->push_back(v);
    } while (eat(','));
    return eat(']') || fail("expected ']'");
  }
  // Iterates an object's members, calling `member(key)` positioned at each value.
  template <class F>
  bool object(F member) {
    if (!eat('{')) return fail("expected '{'");
    if (eat('}')) return true;
    do {
      std::string key;
      if (!string(&key)) return false;
      if (!eat(':')) return fail("expected ':'");
      if (!member(key)) return false;
    } while (eat(','));
    return eat('}') || fail("expected '}' or ','");
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

int64_t gHookBytes = -1;
std::function<void()> gHook;

}  // namespace

int64_t safetensorsElementSize(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

std::string encodeSafetensors(const SafetensorsFile& f) {
  std::string header = "{";
  if (!f.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : f.metadata) {
      header += (first ? "" : ",") + jsonString(k) + ":" + jsonString(v);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : f.tensors) {
    if (header.size() > 1) header += ",";
    header += jsonString(name) + ":{\"dtype\":" + jsonString(t.dtype) + ",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  header += "}";
  // The data that follows starts 8-byte aligned (the format allows trailing spaces).
  while ((header.size() + 8) % 8 != 0) header += ' ';
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((n >> (8 * k)) & 0xFF);
  out += header;
  out.reserve(out.size() + offset);
  for (const auto& [name, t] : f.tensors) out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  return out;
}

std::string decodeSafetensors(std::string_view bytes, SafetensorsFile* out) {
  out->tensors.clear();
  out->metadata.clear();
  if (bytes.size() < 8) return "too short for a safetensors file (" + std::to_string(bytes.size()) + " bytes)";
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t{static_cast<unsigned char>(bytes[k])} << (8 * k);
  if (n > kMaxHeader || n > bytes.size() - 8)
    return "header size " + std::to_string(n) + " runs past the end of the file (" + std::to_string(bytes.size()) +
           " bytes): truncated or not a safetensors file";
  std::string_view header = bytes.substr(8, n), data = bytes.substr(8 + n);
  if (header.empty() || header[0] != '{') return "not a safetensors file (the header is not a JSON object)";
  Json j(header);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::string err;
  bool ok = j.object([&](const std::string& key) {
    if (key == "__metadata__") {
      return j.object([&](const std::string& mk) {
        std::string v;
        if (!j.string(&v)) return false;
        out->metadata[mk] = v;
        return true;
      });
    }
    SafeTensor t;
    std::vector<int64_t> offsets;
    bool haveDtype = false, haveShape = false, haveOffsets = false;
    if (!j.object([&](const std::string& field) {
          if (field == "dtype") return haveDtype = j.string(&t.dtype);
          if (field == "shape") return haveShape = j.intArray(&t.shape);
          if (field == "data_offsets") return haveOffsets = j.intArray(&offsets);
          return j.fail("unknown field '" + field + "' of tensor '" + key + "'");
        }))
      return false;
    if (!haveDtype || !haveShape || !haveOffsets)
      return j.fail("tensor '" + key + "' lacks dtype, shape or data_offsets");
    int64_t es = safetensorsElementSize(t.dtype);
    if (es == 0) return j.fail("tensor '" + key + "' has unsupported dtype '" + t.dtype + "'");
    if (offsets.size() != 2 || offsets[0] > offsets[1])
      return j.fail("tensor '" + key + "' has bad data_offsets");
    int64_t count = 1;
    for (int64_t d : t.shape) {
      if (d > (int64_t{1} << 40) || count > (int64_t{1} << 40)) return j.fail("tensor '" + key + "' is too large");
      count *= d;
    }
    if (offsets[1] - offsets[0] != count * es) {
      err = "tensor '" + key + "': " + std::to_string(offsets[1] - offsets[0]) + " bytes for " + t.dtype + "[" +
            std::to_string(count) + " elements], expected " + std::to_string(count * es);
      return false;
    }
    if (static_cast<uint64_t>(offsets[1]) > data.size()) {
      err = "tensor '" + key + "' ends at byte " + std::to_string(offsets[1]) + " of the data, but the file has " +
            std::to_string(data.size()) + " data bytes: truncated";
      return false;
    }
    t.data.assign(data.begin() + offsets[0], data.begin() + offsets[1]);
    ranges.push_back({offsets[0], offsets[1]});
    if (out->tensors.count(key)) return j.fail("tensor '" + key + "' appears twice");
    out->tensors[key] = std::move(t);
    return true;
  });
  if (!err.empty()) return err;
  if (!ok) return j.error;
  if (!j.atEnd()) return "malformed header JSON: text after the object";
  // The byte ranges must tile the data exactly: overlap or holes mean a damaged file.
  std::sort(ranges.begin(), ranges.end());
  int64_t end = 0;
  for (auto [b, e] : ranges) {
    if (b != end) return "tensor byte ranges overlap or leave a hole at byte " + std::to_string(end);
    end = e;
  }
  if (static_cast<uint64_t>(end) != data.size())
    return std::to_string(data.size() - static_cast<uint64_t>(end)) + " bytes after the last tensor";
  return "";
}

std::string readSafetensors(const std::string& path, SafetensorsFile* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return path + ": cannot open: " + std::strerror(errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (std::string e = decodeSafetensors(ss.str(), out); !e.empty()) return path + ": " + e;
  return "";
}

void setAtomicWriteHookForTesting(int64_t bytes, std::function<void()> hook) {
  gHookBytes = bytes;
  gHook = std::move(hook);
}

std::string writeFileAtomically(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto sysError = [&](const std::string& what) { return path + ": " + what + ": " + std::strerror(errno); };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sysError("cannot create temporary file " + tmp);
  auto writeAll = [&](size_t from, size_t to) {
    while (from < to) {
      ssize_t w = ::write(fd, data.data() + from, to - from);
      if (w < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      from += static_cast<size_t>(w);
    }
    return true;
  };
  size_t split = data.size();
  if (gHook && gHookBytes >= 0) split = std::min(split, static_cast<size_t>(gHookBytes));
  bool ok = writeAll(0, split);
  if (ok && gHook && gHookBytes >= 0) gHook();
  ok = ok && writeAll(split, data.size());
  if (!ok) {
    std::string e = sysError("write failed");
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string e = sysError("fsync/close failed");
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string e = sysError("rename failed");
    ::unlink(tmp.c_str());
    return e;
  }
  // The rename is durable only once the directory entry is on disk.
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return "";
}

}  // namespace kiln::rt
