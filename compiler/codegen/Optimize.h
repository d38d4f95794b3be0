// Target machines and LLVM's new-pass-manager optimization pipeline for generated modules.
#pragma once

#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include <memory>

#include "ir/Support.h"

namespace kiln::codegen {

/// Initializes LLVM's native target once (safe to call repeatedly).
void initializeNativeTarget();

/// A TargetMachine for the host: its triple, CPU and features (AVX2/AVX-512 where present).
/// optLevel is 0..3.
Expected<std::unique_ptr<llvm::TargetMachine>> createHostTargetMachine(int optLevel);

/// Marks m's functions to vectorize 512 bits wide when tm is x86 with AVX-512F (LLVM's tuning
/// for those CPUs prefers 256); other targets are left as they are.
void preferWidestVectors(llvm::Module& m, llvm::TargetMachine& tm);

/// Sets m's triple and data layout for tm, marks its functions with preferWidestVectors, then
/// runs the default O`optLevel` pipeline
/// (PassBuilder::buildPerModuleDefaultPipeline, loop and SLP vectorizers on for O2/O3) with
/// tm's cost model, so vector widths fit the CPU.
void optimizeModule(llvm::Module& m, llvm::TargetMachine& tm, int optLevel);

}  // namespace kiln::codegen
