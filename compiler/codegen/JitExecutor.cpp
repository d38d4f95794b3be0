// JitExecutor: state buffers, initialization through the interpreter's initializers, and runs
// of the compiled entry point.
#include "compiler/codegen/JitExecutor.h"

#include <algorithm>
#include <cstring>

namespace kiln::codegen {

namespace {
size_t bytesOf(const TensorType& t) {
  return static_cast<size_t>(numElements(t.shape) * dtypeSize(t.dtype));
}
}  // namespace

JitExecutor::Buffer JitExecutor::allocate(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; zeroed so unset state is defined.
  size_t n = std::max<size_t>(1, (bytes + KILN_ARENA_ALIGNMENT - 1) / KILN_ARENA_ALIGNMENT) * KILN_ARENA_ALIGNMENT;
  Buffer b(std::aligned_alloc(KILN_ARENA_ALIGNMENT, n));
  if (b) std::memset(b.get(), 0, n);
  return b;
}

Expected<std::unique_ptr<JitExecutor>> JitExecutor::create(const Graph& g, bool updatesState, uint64_t seed,
                                                           JitOptions opts) {
  std::unique_ptr<JitExecutor> x(new JitExecutor(g, updatesState, seed));
  opts.updatesState = updatesState;
  opts.entry = updatesState ? KILN_ENTRY_TRAIN_STEP : KILN_ENTRY_EVALUATE;
  KILN_ASSIGN_OR_RETURN(x->jit_, JitGraph::compile(g, opts));
  for (Node* p : g.parameters()) {
    size_t bytes = bytesOf(p->result()->type());
    x->state_.push_back(allocate(bytes));
    if (!x->state_.back()) return p->error("cannot allocate " + std::to_string(bytes) + " bytes of state");
    x->stateBytes_.push_back(bytes);
    x->statePtrs_.push_back(x->state_.back().get());
  }
  return x;
}

Expected<std::map<std::string, Tensor>> JitExecutor::run(const std::map<std::string, Tensor>& inputs,
                                                         int64_t step) {
  KILN_ASSIGN_OR_RETURN(auto bound, jit_->bindInputs(inputs));
  auto [batch, in] = std::move(bound);
  const std::vector<size_t>& returned = jit_->returnedOutputs();
  std::vector<Tensor> outs;
  std::vector<void*> outPtrs;
  outs.reserve(returned.size());
  for (size_t i : returned) {
    const TensorType& t = g_.outputs()[i].value->type();
    outs.emplace_back(t.dtype, bindBatch(t.shape, batch));
    outPtrs.push_back(outs.back().raw());
  }
  // The arena grows to the largest batch seen and is reused: no allocation per step after that.
  int64_t need = jit_->arenaSize(batch);
  if (need > arenaBytes_) {
    arena_ = allocate(static_cast<size_t>(need));
    if (!arena_) return Error::msg("cannot allocate " + std::to_string(need) + " bytes of arena");
    arenaBytes_ = need;
  }
  int32_t status = jit_->call(batch, in.data(), outPtrs.data(), statePtrs_.data(), arena_.get(), seed_, step);
  if (status != 0) {
    std::string msg = jit_->statusMessage(status);
    if (updatesState_ && !jit_->stateUpdates().empty())
      msg += " (the compiled step had already updated part of its state, which is no longer valid)";
    return Error::msg(msg);
  }
  std::map<std::string, Tensor> result;
  for (size_t k = 0; k < outs.size(); ++k) result[g_.outputs()[returned[k]].name] = std::move(outs[k]);
  return result;
}

std::map<std::string, Tensor> JitExecutor::state() const {
  std::map<std::string, Tensor> out;
  const std::vector<Node*>& params = g_.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const TensorType& t = params[i]->result()->type();
    Tensor v(t.dtype, t.shape);
    std::memcpy(v.raw(), state_[i].get(), stateBytes_[i]);
    out[params[i]->name()] = std::move(v);
  }
  return out;
}

std::vector<std::string> JitExecutor::stateNames() const {
  std::vector<std::string> names;
  for (Node* p : g_.parameters()) names.push_back(p->name());
  std::sort(names.begin(), names.end());
  return names;
}

Status JitExecutor::setState(const std::string& name, const Tensor& value) {
  const std::vector<Node*>& params = g_.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i]->name() != name) continue;
    const TensorType& t = params[i]->result()->type();
    if (value.type() != t)
      return params[i]->error("value for the parameter is " + value.type().str() + ", expected " + t.str());
    std::memcpy(state_[i].get(), value.raw(), stateBytes_[i]);
    return Status::ok();
  }
  return Error::msg("the graph has no parameter named '" + name + "'");
}

Status JitExecutor::initialize(uint64_t seed) {
  Interpreter interp(g_);
  KILN_RETURN_IF_ERROR(interp.initializeParameters(seed));
  for (const auto& [name, value] : interp.parameters()) KILN_RETURN_IF_ERROR(setState(name, value));
  return Status::ok();
}

Expected<std::unique_ptr<StepExecutor>> makeJitExecutor(const Graph& g, bool updatesState, uint64_t seed) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<JitExecutor> x, JitExecutor::create(g, updatesState, seed));
  return std::unique_ptr<StepExecutor>(std::move(x));
}

}  // namespace kiln::codegen
