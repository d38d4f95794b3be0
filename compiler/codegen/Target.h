// Target machines for ahead-of-time compilation: a triple and CPU chosen by name (or the host's),
// checked against LLVM's target registry so that a typo gets the list of valid names.
#pragma once

#include <llvm/Target/TargetMachine.h>

#include <memory>
#include <string>
#include <vector>

#include "ir/Support.h"

namespace kiln::codegen {

/// The triples kiln compiles for: the runtime (runtime/AbiKernels.cpp) is built and tested for
/// these two only, so an object for any other would have nothing to link against.
const std::vector<std::string>& supportedTriples();

struct TargetChoice {
  /// Empty: the host's triple. Otherwise one of supportedTriples() (LLVM's normalization of it,
  /// e.g. x86_64-pc-linux-gnu, is accepted too).
  std::string triple;
  /// Empty: the host CPU and its features for a host triple, "generic" for another triple.
  /// "native": the host CPU and features (host triple only). Otherwise an LLVM CPU name of the
  /// triple's architecture (x86-64-v3, skylake-avx512, cortex-a72, neoverse-n1, ...).
  std::string cpu;
  int optLevel = 3;
};

/// What a TargetMachine was made for, for reports and the generated header.
struct TargetDescription {
  std::string triple, cpu, features;
};

/// A TargetMachine emitting position-independent code (objects link into PIE executables and
/// shared libraries). Errors: an unknown or unsupported triple (listing the supported ones), an
/// unknown CPU (listing the triple's CPUs, with a did-you-mean), "native" for a foreign triple.
Expected<std::unique_ptr<llvm::TargetMachine>> createTargetMachine(
    const TargetChoice& choice, TargetDescription* described = nullptr);

}  // namespace kiln::codegen
