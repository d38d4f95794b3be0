// Target machines by name for AOT objects: triple and CPU validation against LLVM's registry.
#include "compiler/codegen/Target.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/SubtargetFeature.h>
#include <llvm/TargetParser/Triple.h>

#include <algorithm>
#include <mutex>

namespace kiln::codegen {

namespace {

void initializeAllTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
  });
}

std::string join(const std::vector<std::string>& xs) {
  std::string s;
  for (const std::string& x : xs) s += (s.empty() ? "" : ", ") + x;
  return s;
}

llvm::CodeGenOptLevel codeGenLevel(int optLevel) {
  switch (optLevel) {
    case 0: return llvm::CodeGenOptLevel::None;
    case 1: return llvm::CodeGenOptLevel::Less;
    case 2: return llvm::CodeGenOptLevel::Default;
    default: return llvm::CodeGenOptLevel::Aggressive;
  }
}

std::string hostFeatures() {
  llvm::SubtargetFeatures f;
  for (const auto& kv : llvm::sys::getHostCPUFeatures()) f.AddFeature(kv.first(), kv.second);
  return f.getString();
}

/// Whether `t` is one of the supported architecture/OS pairs, however the vendor is spelled.
bool isSupported(const llvm::Triple& t) {
  return (t.getArch() == llvm::Triple::x86_64 || t.getArch() == llvm::Triple::aarch64) &&
         t.getOS() == llvm::Triple::Linux && t.getEnvironment() == llvm::Triple::GNU;
}

}  // namespace

const std::vector<std::string>& supportedTriples() {
  static const std::vector<std::string> kTriples = {"x86_64-linux-gnu", "aarch64-linux-gnu"};
  return kTriples;
}

Expected<std::unique_ptr<llvm::TargetMachine>> createTargetMachine(const TargetChoice& choice,
                                                                   TargetDescription* described) {
  initializeAllTargets();
  llvm::Triple host(llvm::sys::getProcessTriple());
  bool hostTriple = choice.triple.empty();
  llvm::Triple triple = hostTriple ? host : llvm::Triple(llvm::Triple::normalize(choice.triple));
  if (!hostTriple && !isSupported(triple))
    return Error::msg("unknown target triple '" + choice.triple + "'; kiln compiles for " +
                      join(supportedTriples()));
  // The host counts as the host however its triple was spelled (x86_64-linux-gnu on Debian is
  // x86_64-pc-linux-gnu to LLVM).
  bool isHost = triple.getArch() == host.getArch() && triple.getOS() == host.getOS();
  std::string err;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple.str(), err);
  if (!target) return Error::msg("no LLVM target for '" + triple.str() + "': " + err);

  std::string cpu = choice.cpu, features;
  if (cpu == "native" || (cpu.empty() && isHost)) {
    if (!isHost)
      return Error::msg("--cpu native needs the host's architecture (" + host.str() + "), not " +
                        triple.str() + "; name the target's CPU instead (e.g. cortex-a72)");
    cpu = llvm::sys::getHostCPUName().str();
    features = hostFeatures();
  } else if (cpu.empty()) {
    cpu = "generic";
  } else {
    std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(triple.str(), "", ""));
    if (!sti) return Error::msg("LLVM has no subtarget information for " + triple.str());
    if (!sti->isCPUStringValid(cpu)) {
      std::vector<std::string> names = {"native"};
      std::string best;
      size_t bestDistance = 4;  // suggest only near misses
      for (const llvm::SubtargetSubTypeKV& kv : sti->getAllProcessorDescriptions()) {
        names.push_back(kv.Key);
        size_t d = editDistance(cpu, kv.Key);
        if (d < bestDistance) bestDistance = d, best = kv.Key;
      }
      std::string hint = best.empty() ? "" : "did you mean '" + best + "'? ";
      return Error::msg("unknown CPU '" + cpu + "' for " + triple.str() + "; " + hint +
                        "valid CPUs: " + join(names));
    }
  }
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> tm(
      target->createTargetMachine(triple.str(), cpu, features, options, llvm::Reloc::PIC_,
                                  std::nullopt, codeGenLevel(choice.optLevel)));
  if (!tm)
    return Error::msg("LLVM cannot create a target machine for " + triple.str() + " (CPU " + cpu +
                      ")");
  if (described) *described = {triple.str(), cpu, features};
  return tm;
}

}  // namespace kiln::codegen
