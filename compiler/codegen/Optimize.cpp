// Host target machines and the O2/O3 pipeline of LLVM's new pass manager.
#include "compiler/codegen/Optimize.h"

#include <llvm/Analysis/CGSCCPassManager.h>
#include <llvm/Analysis/LoopAnalysisManager.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>

#include <mutex>

namespace kiln::codegen {

void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

// LLVM's tuning for most AVX-512 CPUs (Skylake-X through Sapphire Rapids, Rocket Lake) prefers
// 256-bit vectors, against the frequency drop of 512-bit instructions in mixed code. Generated
// kernels are long runs of vector math where the doubled width wins: at 1 thread on this
// machine's AVX-512 Xeon, the transcendental loops ran 20-30% faster and deep_selu's prediction
// (batch 256) 9% faster (benchmarks/README.md). Only x86 targets with AVX-512F are affected;
// AArch64 and the generic x86-64 CPU keep their widths.
void preferWidestVectors(llvm::Module& m, llvm::TargetMachine& tm) {
  if (!tm.getTargetTriple().isX86() || !tm.getMCSubtargetInfo()->checkFeatures("+avx512f")) return;
  for (llvm::Function& f : m)
    if (!f.isDeclaration() && !f.hasFnAttribute("prefer-vector-width"))
      f.addFnAttr("prefer-vector-width", "512");
}

static llvm::CodeGenOptLevel codeGenLevel(int optLevel) {
  switch (optLevel) {
    case 0: return llvm::CodeGenOptLevel::None;
    case 1: return llvm::CodeGenOptLevel::Less;
    case 2: return llvm::CodeGenOptLevel::Default;
    default: return llvm::CodeGenOptLevel::Aggressive;
  }
}

Expected<std::unique_ptr<llvm::TargetMachine>> createHostTargetMachine(int optLevel) {
  initializeNativeTarget();
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return Error::msg("cannot detect the host target: " + llvm::toString(jtmb.takeError()));
  jtmb->setCodeGenOptLevel(codeGenLevel(optLevel));
  auto tm = jtmb->createTargetMachine();
  if (!tm) return Error::msg("cannot create a target machine for the host: " + llvm::toString(tm.takeError()));
  return std::move(*tm);
}

void optimizeModule(llvm::Module& m, llvm::TargetMachine& tm, int optLevel) {
  m.setTargetTriple(tm.getTargetTriple().str());
  m.setDataLayout(tm.createDataLayout());
  if (optLevel == 0) return;
  preferWidestVectors(m, tm);
  llvm::PipelineTuningOptions pto;
  pto.LoopVectorization = optLevel >= 2;
  pto.SLPVectorization = optLevel >= 2;
  pto.LoopUnrolling = true;
  llvm::PassBuilder pb(&tm, pto);
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = optLevel == 1   ? llvm::OptimizationLevel::O1
                                  : optLevel == 2 ? llvm::OptimizationLevel::O2
                                                  : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(level);
  mpm.run(m, mam);
}

}  // namespace kiln::codegen
