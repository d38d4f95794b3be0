// Checkpoint files, the fingerprint, the checkpoint directory and partial restore.
#include "compiler/training/Checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "ir/ProtoIO.h"
#include "runtime/Random.h"
#include "runtime/Safetensors.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const char* safeDtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "";
}

Error fileError(const std::string& path, const std::string& what) { return Error(Diagnostic{{path}, {}, {}, what}); }

}  // namespace

std::string modelFingerprint(const Graph& inference) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rt::hashName(graphToText(inference))));
  return buf;
}

Status writeCheckpoint(const std::string& path, const Checkpoint& c) {
  rt::SafetensorsFile f;
  f.metadata = c.metadata;
  f.metadata[kFormatKey] = "kiln";
  for (const auto& [name, t] : c.tensors) {
    rt::SafeTensor s;
    s.dtype = safeDtype(t.dtype());
    s.shape = t.shape();
    const auto* p = static_cast<const unsigned char*>(t.raw());
    s.data.assign(p, p + t.byteSize());
    f.tensors[name] = std::move(s);
  }
  if (std::string e = rt::writeFileAtomically(path, rt::encodeSafetensors(f)); !e.empty())
    return Error::msg("cannot write checkpoint " + e);
  return Status::ok();
}

Expected<Checkpoint> readCheckpoint(const std::string& path) {
  rt::SafetensorsFile f;
  if (std::string e = rt::readSafetensors(path, &f); !e.empty()) return Error::msg("bad checkpoint " + e);
  Checkpoint c;
  c.metadata = std::move(f.metadata);
  for (auto& [name, s] : f.tensors) {
    DType dt;
    if (s.dtype == "F32") dt = DType::Float32;
    else if (s.dtype == "F64") dt = DType::Float64;
    else if (s.dtype == "I32") dt = DType::Int32;
    else if (s.dtype == "I64") dt = DType::Int64;
    else if (s.dtype == "BOOL") dt = DType::Bool;
    else return fileError(path, "tensor '" + name + "' has dtype " + s.dtype + ", which Kiln tensors do not have");
    Tensor t(dt, s.shape);
    std::copy(s.data.begin(), s.data.end(), static_cast<unsigned char*>(t.raw()));
    c.tensors[name] = std::move(t);
  }
  return c;
}

Status restoreAllState(const Checkpoint& c, const std::string& path, const std::string& fingerprint,
                       StepExecutor& exec) {
  auto it = c.metadata.find(kFingerprintKey);
  if (it == c.metadata.end())
    return fileError(path, "not a Kiln training checkpoint (no " + std::string(kFingerprintKey) + " metadata)");
  if (it->second != fingerprint)
    return fileError(path, "the checkpoint is of another model (fingerprint " + it->second + ", this model's is " +
                               fingerprint + "): layers, shapes or initializers differ");
  std::map<std::string, Tensor> state = exec.state();
  for (const auto& [name, current] : state) {
    auto t = c.tensors.find(name);
    if (t == c.tensors.end())
      return fileError(path, "the checkpoint lacks the state '" + name +
                                 "' (written with another optimizer or other --freeze settings?)");
    if (t->second.type() != current.type())
      return fileError(path, "tensor '" + name + "' is " + t->second.type().str() + " in the checkpoint but " +
                                 current.type().str() + " in the model");
  }
  for (const auto& [name, current] : state) KILN_RETURN_IF_ERROR(exec.setState(name, c.tensors.at(name)));
  return Status::ok();
}

Expected<RestoreReport> restoreMatching(const Checkpoint& c, const std::string& path, const std::string& pattern,
                                        const std::vector<Rename>& renames, StepExecutor& exec) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Error::msg("--restore '" + pattern + "' is not a regular expression: " + e.what());
  }
  std::map<std::string, Tensor> state = exec.state();
  RestoreReport report;
  std::vector<std::string> unknown;
  for (const auto& [stored, t] : c.tensors) {
    std::string name = stored;
    for (const Rename& r : renames)
      if (name.starts_with(r.from)) {
        name = r.to + name.substr(r.from.size());
        break;
      }
    if (!std::regex_match(stored, re)) continue;
    auto s = state.find(name);
    if (s == state.end()) {
      // An optimizer slot (hidden1/kernel/m) of a parameter the model has: the model has no
      // slot when the parameter is frozen or the optimizer differs; the weights are what reuse
      // is about.
      size_t slash = name.rfind('/');
      if (slash != std::string::npos && state.count(name.substr(0, slash))) {
        report.skippedSlots.push_back(name);
        continue;
      }
      unknown.push_back(stored == name ? name : stored + " (as " + name + ")");
      continue;
    }
    if (t.type() != s->second.type())
      return fileError(path, "cannot restore '" + name + "': it is " + t.type().str() + " in the checkpoint but " +
                                 s->second.type().str() + " in the model");
    KILN_RETURN_IF_ERROR(exec.setState(name, t));
    report.restored.push_back(name);
  }
  if (!unknown.empty()) {
    std::string list;
    for (const std::string& u : unknown) list += (list.empty() ? "" : ", ") + u;
    return fileError(path, "--restore '" + pattern + "' matches tensors the model does not have: " + list +
                               " (use --rename FROM=TO, or a narrower pattern)");
  }
  if (report.restored.empty())
    return fileError(path, "--restore '" + pattern + "' matches no tensor of the checkpoint");
  for (const auto& [name, t] : state)
    if (std::find(report.restored.begin(), report.restored.end(), name) == report.restored.end())
      report.initialized.push_back(name);
  return report;
}

Status CheckpointDir::prepare() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Error::msg(dir_ + ": cannot create the checkpoint directory: " + ec.message());
  return Status::ok();
}

std::vector<std::pair<int64_t, std::string>> CheckpointDir::list() const {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string f = e.path().filename().string();
    long long step;
    int used = 0;
    if (std::sscanf(f.c_str(), "ckpt-step-%lld.safetensors%n", &step, &used) == 1 &&
        used == static_cast<int>(f.size()))
      out.push_back({step, e.path().string()});
  }
  std::sort(out.begin(), out.end());
  return out;
}

Expected<std::string> CheckpointDir::save(const Checkpoint& c, int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-step-%08lld.safetensors", static_cast<long long>(step));
  std::string path = (fs::path(dir_) / name).string();
  KILN_RETURN_IF_ERROR(writeCheckpoint(path, c));
  // Only after the new file is safely in place do the old ones go.
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keep_) < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i].second, ec);
  }
  return path;
}

Expected<std::string> CheckpointDir::saveBest(const Checkpoint& c) const {
  KILN_RETURN_IF_ERROR(writeCheckpoint(bestPath(), c));
  return bestPath();
}

std::string CheckpointDir::latest() const {
  auto all = list();
  return all.empty() ? "" : all.back().second;
}

std::string CheckpointDir::bestPath() const { return (fs::path(dir_) / "best.safetensors").string(); }

}  // namespace kiln
