// CompiledExecutor: state buffers, initialization through the interpreter's initializers, and
// runs of a compiled entry point.
#include "compiler/training/CompiledExecutor.h"

#include <algorithm>
#include <cstring>

namespace kiln {

namespace {
size_t bytesOf(const TensorType& t) {
  return static_cast<size_t>(numElements(t.shape) * dtypeSize(t.dtype));
}
}  // namespace

Expected<std::pair<int64_t, std::vector<const void*>>> bindGraphInputs(
    const Graph& g, const std::map<std::string, Tensor>& inputs) {
  int64_t batch = -1;
  std::vector<const void*> in;
  for (Node* n : g.inputs()) {
    auto it = inputs.find(n->name());
    const TensorType& want = n->result()->type();
    if (it == inputs.end())
      return n->error("no value given for input '" + n->name() + "' (" + want.str() + ")");
    const Tensor& got = it->second;
    bool ok = got.dtype() == want.dtype && got.rank() == want.rank();
    for (int64_t k = 0; ok && k < want.rank(); ++k) {
      if (want.shape[k] != kBatch) {
        ok = got.dim(k) == want.shape[k];
      } else {
        if (batch < 0) batch = got.dim(k);
        ok = got.dim(k) == batch && batch > 0;
      }
    }
    if (!ok)
      return n->error("input '" + n->name() + "' is " + got.type().str() + ", expected " +
                      want.str());
    in.push_back(got.raw());
  }
  if (batch < 0) batch = 1;
  return std::pair{batch, std::move(in)};
}

CompiledExecutor::Buffer CompiledExecutor::allocate(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; zeroed so unset state is defined.
  size_t n = std::max<size_t>(1, (bytes + KILN_ARENA_ALIGNMENT - 1) / KILN_ARENA_ALIGNMENT) *
             KILN_ARENA_ALIGNMENT;
  Buffer b(std::aligned_alloc(KILN_ARENA_ALIGNMENT, n));
  if (b) std::memset(b.get(), 0, n);
  return b;
}

Expected<std::unique_ptr<CompiledExecutor>> CompiledExecutor::create(const Graph& g,
                                                                     CompiledFunction fn,
                                                                     uint64_t seed,
                                                                     std::string kind) {
  if (!fn.entry || !fn.arenaSize)
    return Error::msg("internal: a compiled executor needs its entry point");
  for (size_t i : fn.returnedOutputs)
    if (i >= g.outputs().size())
      return Error::msg("internal: returned output " + std::to_string(i) + " of a graph with " +
                        std::to_string(g.outputs().size()) + " outputs");
  std::unique_ptr<CompiledExecutor> x(
      new CompiledExecutor(g, std::move(fn), seed, std::move(kind)));
  for (Node* p : g.parameters()) {
    size_t bytes = bytesOf(p->result()->type());
    x->state_.push_back(allocate(bytes));
    if (!x->state_.back())
      return p->error("cannot allocate " + std::to_string(bytes) + " bytes of state");
    x->stateBytes_.push_back(bytes);
    x->statePtrs_.push_back(x->state_.back().get());
  }
  return x;
}

Expected<std::map<std::string, Tensor>> CompiledExecutor::run(
    const std::map<std::string, Tensor>& inputs, int64_t step) {
  KILN_ASSIGN_OR_RETURN(auto bound, bindGraphInputs(g_, inputs));
  auto [batch, in] = std::move(bound);
  std::vector<Tensor> outs;
  std::vector<void*> outPtrs;
  outs.reserve(fn_.returnedOutputs.size());
  for (size_t i : fn_.returnedOutputs) {
    const TensorType& t = g_.outputs()[i].value->type();
    outs.emplace_back(t.dtype, bindBatch(t.shape, batch));
    outPtrs.push_back(outs.back().raw());
  }
  // The arena grows to the largest batch seen and is reused: no allocation per step after that.
  int64_t need = fn_.arenaSize(batch);
  if (need > arenaBytes_) {
    arena_ = allocate(static_cast<size_t>(need));
    if (!arena_) return Error::msg("cannot allocate " + std::to_string(need) + " bytes of arena");
    arenaBytes_ = need;
  }
  int32_t status =
      fn_.entry(batch, in.data(), outPtrs.data(), statePtrs_.data(), arena_.get(), seed_, step);
  if (status != 0) {
    const bool known = status >= 1 && static_cast<size_t>(status) <= fn_.checkMessages.size();
    // A check's message is a whole diagnostic already ("file:line:col: error: node ...").
    std::string msg = known ? fn_.checkMessages[static_cast<size_t>(status - 1)]
                            : "error: the compiled function returned the unknown status " + std::to_string(status);
    if (fn_.updatesState)
      msg += " (the compiled step had already updated part of its state, which is no longer valid)";
    return Error::formatted(msg);
  }
  std::map<std::string, Tensor> result;
  for (size_t k = 0; k < outs.size(); ++k)
    result[g_.outputs()[fn_.returnedOutputs[k]].name] = std::move(outs[k]);
  return result;
}

std::map<std::string, Tensor> CompiledExecutor::state() const {
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

std::vector<std::string> CompiledExecutor::stateNames() const {
  std::vector<std::string> names;
  for (Node* p : g_.parameters()) names.push_back(p->name());
  std::sort(names.begin(), names.end());
  return names;
}

Status CompiledExecutor::setState(const std::string& name, const Tensor& value) {
  const std::vector<Node*>& params = g_.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i]->name() != name) continue;
    const TensorType& t = params[i]->result()->type();
    if (value.type() != t)
      return params[i]->error("value for the parameter is " + value.type().str() + ", expected " +
                              t.str());
    std::memcpy(state_[i].get(), value.raw(), stateBytes_[i]);
    return Status::ok();
  }
  return Error::msg("the graph has no parameter named '" + name + "'");
}

Status CompiledExecutor::initialize(uint64_t seed) {
  Interpreter interp(g_);
  KILN_RETURN_IF_ERROR(interp.initializeParameters(seed));
  for (const auto& [name, value] : interp.parameters()) KILN_RETURN_IF_ERROR(setState(name, value));
  return Status::ok();
}

}  // namespace kiln
