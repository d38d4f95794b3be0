// AOT compilation: lower each entry point, link them into one module with the weights, optimize
// for the chosen target, emit the object, and write the header (and external weights).
#include "compiler/codegen/Aot.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Linker/Linker.h>
#include <llvm/Support/raw_ostream.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "compiler/codegen/AotHeader.h"
#include "compiler/codegen/Lowering.h"
#include "compiler/codegen/Optimize.h"
#include "runtime/KilnABI.h"
#include "runtime/Safetensors.h"

namespace kiln::codegen {

namespace {

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

const char* safetensorsDtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "";
}

/// Adds NAME_weights: an exported table of pointers to one private read-only array per state
/// tensor, 64-byte aligned so that vector loads of the weights need no peeling.
void addWeights(llvm::Module& m, const std::string& name, const std::vector<const Node*>& state,
                const std::map<std::string, Tensor>& values) {
  llvm::LLVMContext& ctx = m.getContext();
  std::vector<llvm::Constant*> ptrs;
  for (size_t i = 0; i < state.size(); ++i) {
    const Tensor& t = values.at(state[i]->name());
    llvm::StringRef bytes(static_cast<const char*>(t.raw()), static_cast<size_t>(t.byteSize()));
    llvm::Constant* data =
        llvm::ConstantDataArray::getRaw(bytes, bytes.size(), llvm::Type::getInt8Ty(ctx));
    auto* gv = new llvm::GlobalVariable(m, data->getType(), /*isConstant=*/true,
                                        llvm::GlobalValue::PrivateLinkage, data,
                                        name + "_w" + std::to_string(i));
    gv->setAlignment(llvm::Align(64));
    ptrs.push_back(gv);
  }
  auto* tableTy = llvm::ArrayType::get(llvm::PointerType::get(ctx, 0), ptrs.size());
  auto* table =
      new llvm::GlobalVariable(m, tableTy, /*isConstant=*/true, llvm::GlobalValue::ExternalLinkage,
                               llvm::ConstantArray::get(tableTy, ptrs), name + "_weights");
  table->setAlignment(llvm::Align(8));
}

Status writeFile(const std::string& path, std::string_view data) {
  if (std::string e = rt::writeFileAtomically(path, data); !e.empty())
    return Error::msg("cannot write " + e);
  return Status::ok();
}

}  // namespace

std::vector<const Node*> stateParameters(const std::vector<AotFunction>& functions) {
  std::vector<const Node*> state;
  std::set<std::string> seen;
  for (const AotFunction& f : functions)
    for (const Node* p : f.graph->parameters())
      if (seen.insert(p->name()).second) state.push_back(p);
  return state;
}

Expected<std::map<std::string, Tensor>> checkState(const std::vector<AotFunction>& functions,
                                                   const std::map<std::string, Tensor>& tensors,
                                                   const std::string& path) {
  std::map<std::string, Tensor> out;
  for (const Node* p : stateParameters(functions)) {
    const TensorType& want = p->result()->type();
    auto it = tensors.find(p->name());
    if (it == tensors.end())
      return Error::msg(path + ": the checkpoint has no tensor '" + p->name() +
                        "'; the model's parameter is " + want.str());
    if (it->second.type() != want)
      return Error::msg(path + ": tensor '" + p->name() + "' is " + it->second.type().str() +
                        " in the checkpoint, but the model's parameter is " + want.str());
    out[p->name()] = it->second;
  }
  return out;
}

Expected<AotResult> compileAot(const std::string& rawName,
                               const std::vector<AotFunction>& functions,
                               const std::map<std::string, Tensor>& stateValues,
                               const AotOptions& opts, const std::string& outDir) {
  AotResult r;
  std::string name = cIdentifier(rawName);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<llvm::TargetMachine> tm,
                        createTargetMachine(opts.target, &r.target));
  std::vector<const Node*> state = stateParameters(functions);
  std::map<std::string, int> stateIndex;
  for (size_t i = 0; i < state.size(); ++i) {
    stateIndex[state[i]->name()] = static_cast<int>(i);
    const TensorType& t = state[i]->result()->type();
    auto it = stateValues.find(state[i]->name());
    if (it == stateValues.end() || it->second.type() != t)
      return Error::msg("internal: no value of type " + t.str() + " for state '" +
                        state[i]->name() + "'");
    if (t.rank() > kHeaderMaxRank)
      return Error::msg("state '" + state[i]->name() + "' has rank above 8");
    r.stateBytes += it->second.byteSize();
  }
  r.stateTensors = static_cast<int64_t>(state.size());

  // ---- IR emission: each entry point in a module of its own, linked into the first.
  auto start = std::chrono::steady_clock::now();
  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> module;
  HeaderSpec hs;
  hs.name = name;
  hs.state = state;
  hs.externalWeights = opts.externalWeights;
  hs.source = opts.source;
  hs.weightsOrigin = opts.weightsOrigin;
  for (const AotFunction& f : functions) {
    for (const Node* i : f.graph->inputs())
      if (i->result()->type().rank() > kHeaderMaxRank)
        return i->error("inputs of rank above 8 are not supported by AOT headers");
    KILN_ASSIGN_OR_RETURN(
        LoweredGraph lg, lowerGraph(*f.graph, ctx, name, /*schedule=*/{}, f.entry, f.updatesState));
    HeaderFunction hf;
    hf.entry = f.entry;
    hf.symbol = lg.entrySymbol;
    hf.arenaSizeSymbol = lg.arenaSizeSymbol;
    hf.graph = f.graph;
    hf.updatesState = f.updatesState;
    for (size_t i : lg.returnedOutputs) hf.returned.push_back(&f.graph->outputs()[i]);
    for (const Node* p : f.graph->parameters()) hf.paramIndex.push_back(stateIndex.at(p->name()));
    hf.arenaStatic = lg.plan.staticBytes;
    hf.arenaPerBatch = lg.plan.perBatchBytes;
    hf.checkMessages = lg.checkMessages;
    r.arenaStaticAndPerBatch[f.entry] = {lg.plan.staticBytes, lg.plan.perBatchBytes};
    hs.functions.push_back(std::move(hf));
    if (!module) {
      module = std::move(lg.module);
    } else if (llvm::Linker::linkModules(*module, std::move(lg.module))) {
      return Error::msg("internal: cannot link the module of " + f.entry + " into " + name);
    }
  }
  if (!opts.externalWeights) addWeights(*module, name, state, stateValues);
  r.times.irEmission = secondsSince(start);

  // ---- Optimization for the target's cost model.
  start = std::chrono::steady_clock::now();
  optimizeModule(*module, *tm, opts.target.optLevel);
  std::string verifyErrors;
  llvm::raw_string_ostream vos(verifyErrors);
  if (llvm::verifyModule(*module, &vos))
    return Error::msg("internal: optimized module is invalid: " + verifyErrors);
  r.times.optimization = secondsSince(start);

  // ---- Object emission.
  start = std::chrono::steady_clock::now();
  llvm::SmallVector<char, 0> object;
  {
    llvm::raw_svector_ostream os(object);
    llvm::legacy::PassManager pm;
    if (tm->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile))
      return Error::msg("LLVM cannot emit object files for " + r.target.triple);
    pm.run(*module);
  }
  r.times.objectEmission = secondsSince(start);
  hs.target = r.target;

  std::error_code ec;
  std::filesystem::create_directories(outDir, ec);
  if (ec) return Error::msg("cannot create the output directory " + outDir + ": " + ec.message());
  std::filesystem::path dir(outDir);
  r.objectPath = (dir / (name + ".o")).string();
  r.headerPath = (dir / (name + ".h")).string();
  r.objectBytes = static_cast<int64_t>(object.size());
  KILN_RETURN_IF_ERROR(writeFile(r.objectPath, std::string_view(object.data(), object.size())));
  KILN_RETURN_IF_ERROR(writeFile(r.headerPath, generateHeader(hs)));
  if (opts.emitLLVM) {
    r.irPath = (dir / (name + ".ll")).string();
    std::string ir;
    llvm::raw_string_ostream os(ir);
    module->print(os, nullptr);
    KILN_RETURN_IF_ERROR(writeFile(r.irPath, ir));
  }
  if (opts.externalWeights) {
    rt::SafetensorsFile f;
    f.metadata["format"] = "kiln";
    for (const Node* p : state) {
      const Tensor& t = stateValues.at(p->name());
      rt::SafeTensor s;
      s.dtype = safetensorsDtype(t.dtype());
      s.shape = t.shape();
      const auto* bytes = static_cast<const unsigned char*>(t.raw());
      s.data.assign(bytes, bytes + t.byteSize());
      f.tensors[p->name()] = std::move(s);
    }
    r.weightsPath = (dir / (name + ".safetensors")).string();
    KILN_RETURN_IF_ERROR(writeFile(r.weightsPath, rt::encodeSafetensors(f)));
  }
  return r;
}

}  // namespace kiln::codegen
