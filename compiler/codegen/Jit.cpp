// ORC LLJIT: host-optimized code for a graph, linked against the runtime kernels and libm.
#include "compiler/codegen/Jit.h"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/Support/raw_ostream.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "compiler/codegen/Lowering.h"
#include "compiler/codegen/Optimize.h"
#include "compiler/training/CompiledExecutor.h"

namespace kiln::codegen {

namespace {

Error llvmError(const std::string& what, llvm::Error e) {
  return Error::msg(what + ": " + llvm::toString(std::move(e)));
}

/// The functions generated code calls, by symbol: the runtime's (linked into this process but
/// not necessarily exported from it) and the C library's float64 math.
std::vector<std::pair<const char*, void*>> runtimeSymbols() {
  return {
      {KILN_RT_MATMUL_F32, reinterpret_cast<void*>(&kiln_rt_matmul_f32)},
      {KILN_RT_MATMUL_F64, reinterpret_cast<void*>(&kiln_rt_matmul_f64)},
      {KILN_RT_GET_NUM_THREADS, reinterpret_cast<void*>(&kiln_rt_get_num_threads)},
      {KILN_RT_MATMUL_F32_BLOCKED, reinterpret_cast<void*>(&kiln_rt_matmul_f32_blocked)},
      {KILN_RT_MATMUL_F64_BLOCKED, reinterpret_cast<void*>(&kiln_rt_matmul_f64_blocked)},
      {KILN_RT_PARALLEL_FOR, reinterpret_cast<void*>(&kiln_rt_parallel_for)},
      {"exp", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::exp))},
      {"expm1", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::expm1))},
      {"log", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::log))},
      {"log1p", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::log1p))},
      {"tanh", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::tanh))},
      {"erf", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::erf))},
      {"erfc", reinterpret_cast<void*>(static_cast<double (*)(double)>(&::erfc))},
      {"pow", reinterpret_cast<void*>(static_cast<double (*)(double, double)>(&::pow))},
      {"powf", reinterpret_cast<void*>(static_cast<float (*)(float, float)>(&::powf))},
  };
}

}  // namespace

JitGraph::JitGraph(const Graph& g) : g_(g) {}
JitGraph::~JitGraph() = default;

Expected<std::unique_ptr<JitGraph>> JitGraph::compile(const Graph& g, const JitOptions& opts) {
  auto start = std::chrono::steady_clock::now();
  initializeNativeTarget();
  std::unique_ptr<JitGraph> jg(new JitGraph(g));
  auto ctx = std::make_unique<llvm::LLVMContext>();
  KILN_ASSIGN_OR_RETURN(LoweredGraph lowered, lowerGraph(g, *ctx, /*name=*/"", opts.schedule, opts.entry, opts.updatesState));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<llvm::TargetMachine> tm, createHostTargetMachine(opts.optLevel));
  optimizeModule(*lowered.module, *tm, opts.optLevel);
  if (opts.keepIR) {
    llvm::raw_string_ostream os(jg->ir_);
    lowered.module->print(os, nullptr);
  }
  jg->plan_ = lowered.plan;
  jg->checkMessages_ = lowered.checkMessages;
  jg->returned_ = lowered.returnedOutputs;
  jg->updates_ = lowered.stateUpdates;
  jg->storedNodes_ = lowered.storedNodes;
  jg->mergedNodes_ = lowered.mergedNodes;

  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return llvmError("cannot detect the host", jtmb.takeError());
  jtmb->setCodeGenOptLevel(tm->getOptLevel());
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!jit) return llvmError("cannot create the JIT", jit.takeError());
  llvm::orc::JITDylib& jd = (*jit)->getMainJITDylib();
  llvm::orc::SymbolMap symbols;
  for (auto [name, addr] : runtimeSymbols())
    symbols[(*jit)->mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(addr),
                                             llvm::JITSymbolFlags::Exported};
  if (auto e = jd.define(llvm::orc::absoluteSymbols(std::move(symbols))))
    return llvmError("cannot define the runtime symbols", std::move(e));
  // memcpy, memset and whatever else LLVM turns loops into come from the C library.
  auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!gen) return llvmError("cannot search the process's symbols", gen.takeError());
  jd.addGenerator(std::move(*gen));

  if (auto e = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(std::move(lowered.module), std::move(ctx))))
    return llvmError("cannot add the module to the JIT", std::move(e));
  auto entry = (*jit)->lookup(lowered.entrySymbol);
  if (!entry) return llvmError("cannot compile " + lowered.entrySymbol, entry.takeError());
  auto arena = (*jit)->lookup(lowered.arenaSizeSymbol);
  if (!arena) return llvmError("cannot compile " + lowered.arenaSizeSymbol, arena.takeError());
  jg->entry_ = entry->toPtr<kiln_entry_fn>();
  jg->arenaSize_ = arena->toPtr<kiln_arena_size_fn>();
  jg->jit_ = std::move(*jit);
  jg->compileSeconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return jg;
}

std::string JitGraph::statusMessage(int32_t status) const {
  if (status == 0) return "ok";
  if (status < 1 || static_cast<size_t>(status) > checkMessages_.size())
    return "unknown status " + std::to_string(status);
  return checkMessages_[static_cast<size_t>(status - 1)];
}

Expected<std::pair<int64_t, std::vector<const void*>>> JitGraph::bindInputs(
    const std::map<std::string, Tensor>& inputs) const {
  return bindGraphInputs(g_, inputs);
}

Expected<std::map<std::string, Tensor>> JitGraph::run(const std::map<std::string, Tensor>& inputs,
                                                      const std::map<std::string, Tensor>& params,
                                                      uint64_t seed, int64_t step) const {
  KILN_ASSIGN_OR_RETURN(auto bound, bindInputs(inputs));
  auto [batch, in] = std::move(bound);
  // The state the call may overwrite is a copy: `params` stays as given.
  std::vector<Tensor> state;
  std::vector<void*> ps;
  for (Node* p : g_.parameters()) {
    auto it = params.find(p->name());
    if (it == params.end()) return p->error("parameter has no value");
    if (it->second.type() != p->result()->type())
      return p->error("value for the parameter is " + it->second.type().str() + ", expected " +
                      p->result()->type().str());
    state.push_back(it->second);
  }
  for (Tensor& t : state) ps.push_back(t.raw());
  std::vector<Tensor> outs;
  for (size_t i : returned_)
    outs.emplace_back(g_.outputs()[i].value->type().dtype, bindBatch(g_.outputs()[i].value->type().shape, batch));
  std::vector<void*> outPtrs;
  for (Tensor& t : outs) outPtrs.push_back(t.raw());
  int64_t bytes = arenaSize(batch);
  size_t alloc = static_cast<size_t>((bytes + KILN_ARENA_ALIGNMENT) / KILN_ARENA_ALIGNMENT * KILN_ARENA_ALIGNMENT);
  std::unique_ptr<void, decltype(&std::free)> arena(std::aligned_alloc(KILN_ARENA_ALIGNMENT, alloc), &std::free);
  int32_t status = call(batch, in.data(), outPtrs.data(), ps.data(), arena.get(), seed, step);
  if (status != 0) return Error::msg(statusMessage(status));
  std::map<std::string, Tensor> result;
  for (size_t k = 0; k < outs.size(); ++k) result[g_.outputs()[returned_[k]].name] = std::move(outs[k]);
  for (const LoweredGraph::StateUpdate& u : updates_) result[g_.outputs()[u.output].name] = state[u.param];
  return result;
}

}  // namespace kiln::codegen
