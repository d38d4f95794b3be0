// Helpers for the AOT tests: kiln compile with its stderr captured, and an AOT object loaded
// into the process (ORC, with the runtime's kernels) so its entry points can be called directly.
#pragma once

#include <gtest/gtest.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/MemoryBuffer.h>

#include <string>
#include <utility>
#include <vector>

#include "CodegenTestUtil.h"
#include "compiler/codegen/Optimize.h"
#include "compiler/driver/Commands.h"
#include "runtime/KilnABI.h"

namespace kiln::test {

/// runCompile's exit status and what it printed to stderr.
inline std::pair<int, std::string> runCompileCaptured(const std::vector<std::string>& args) {
  testing::internal::CaptureStderr();
  int status = driver::runCompile(args);
  return {status, testing::internal::GetCapturedStderr()};
}

/// Loads an AOT object into an ORC JIT (as a static linker would, with the runtime's symbols)
/// and returns the address of `symbol`.
class ObjectLoader {
 public:
  explicit ObjectLoader(const std::string& objectPath) {
    codegen::initializeNativeTarget();
    auto jit = llvm::orc::LLJITBuilder().create();
    if (!jit) {
      error_ = llvm::toString(jit.takeError());
      return;
    }
    jit_ = std::move(*jit);
    llvm::orc::JITDylib& jd = jit_->getMainJITDylib();
    llvm::orc::SymbolMap symbols;
    symbols[jit_->mangleAndIntern(KILN_RT_MATMUL_F32)] = {
        llvm::orc::ExecutorAddr::fromPtr(reinterpret_cast<void*>(&kiln_rt_matmul_f32)),
        llvm::JITSymbolFlags::Exported};
    symbols[jit_->mangleAndIntern(KILN_RT_MATMUL_F64)] = {
        llvm::orc::ExecutorAddr::fromPtr(reinterpret_cast<void*>(&kiln_rt_matmul_f64)),
        llvm::JITSymbolFlags::Exported};
    // Fused matmul epilogues pick their row blocks from the runtime's thread count.
    symbols[jit_->mangleAndIntern(KILN_RT_GET_NUM_THREADS)] = {
        llvm::orc::ExecutorAddr::fromPtr(reinterpret_cast<void*>(&kiln_rt_get_num_threads)),
        llvm::JITSymbolFlags::Exported};
    // Fused matmul epilogues (kiln_rt_matmul_*_blocked) and parallel elementwise loops.
    symbols[jit_->mangleAndIntern(KILN_RT_MATMUL_F32_BLOCKED)] = {
        llvm::orc::ExecutorAddr::fromPtr(reinterpret_cast<void*>(&kiln_rt_matmul_f32_blocked)),
        llvm::JITSymbolFlags::Exported};
    symbols[jit_->mangleAndIntern(KILN_RT_MATMUL_F64_BLOCKED)] = {
        llvm::orc::ExecutorAddr::fromPtr(reinterpret_cast<void*>(&kiln_rt_matmul_f64_blocked)),
        llvm::JITSymbolFlags::Exported};
    symbols[jit_->mangleAndIntern(KILN_RT_PARALLEL_FOR)] = {
        llvm::orc::ExecutorAddr::fromPtr(reinterpret_cast<void*>(&kiln_rt_parallel_for)),
        llvm::JITSymbolFlags::Exported};
    if (auto e = jd.define(llvm::orc::absoluteSymbols(std::move(symbols))))
      error_ = llvm::toString(std::move(e));
    auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
        jit_->getDataLayout().getGlobalPrefix());
    if (gen) jd.addGenerator(std::move(*gen));
    auto buf = llvm::MemoryBuffer::getFile(objectPath);
    if (!buf) {
      error_ = "cannot read " + objectPath;
      return;
    }
    if (auto e = jit_->addObjectFile(std::move(*buf))) error_ = llvm::toString(std::move(e));
  }
  const std::string& error() const { return error_; }
  template <class T>
  T lookup(const std::string& symbol) {
    auto a = jit_->lookup(symbol);
    if (!a) {
      error_ = llvm::toString(a.takeError());
      return nullptr;
    }
    return a->toPtr<T>();
  }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  std::string error_;
};

}  // namespace kiln::test
