// The reference interpreter: walks the graph in topological order, calling one kernel per node.
#include "compiler/interpreter/Interpreter.h"

#include "compiler/interpreter/Kernels.h"
#include "runtime/Init.h"
#include "runtime/Random.h"

namespace kiln {

const KernelTable& kernelTable() {
  static const KernelTable table = [] {
    KernelTable t{};
    registerElementwiseKernels(t);
    registerNNKernels(t);
    registerShapeKernels(t);
    return t;
  }();
  return table;
}

std::vector<int64_t> broadcastIndex(const Shape& in, const Shape& out) {
  int64_t total = numElements(out);
  std::vector<int64_t> idx(static_cast<size_t>(total));
  const size_t r = out.size(), off = r - in.size();
  std::vector<int64_t> inStrides = stridesOf(in);
  std::vector<int64_t> pos(r, 0);
  for (int64_t e = 0; e < total; ++e) {
    int64_t j = 0;
    for (size_t k = off; k < r; ++k)
      if (in[k - off] != 1) j += pos[k] * inStrides[k - off];
    idx[static_cast<size_t>(e)] = j;
    for (int64_t k = static_cast<int64_t>(r) - 1; k >= 0; --k) {
      if (++pos[k] < out[k]) break;
      pos[k] = 0;
    }
  }
  return idx;
}

Interpreter::Interpreter(const Graph& g) : graph_(g) {}

Status Interpreter::initializeParameters(uint64_t seed) {
  for (Node* p : graph_.parameters()) {
    const TensorType& t = p->result()->type();
    rt::InitSpec spec;
    spec.kind = p->s("init");
    spec.scale = p->f("init_scale");
    spec.mode = p->s("init_mode");
    spec.distribution = p->s("init_distribution");
    spec.value = p->f("init_value");
    spec.values = p->floats("init_values");
    std::vector<double> values(static_cast<size_t>(numElements(t.shape)));
    std::string err = rt::fillInitializer(spec, t.shape, seed, rt::hashName(p->name()), values.data());
    if (!err.empty()) return p->error(err);
    Tensor v(t.dtype, t.shape);
    for (int64_t i = 0; i < v.size(); ++i) v.setDouble(i, values[static_cast<size_t>(i)]);
    params_[p->name()] = std::move(v);
  }
  return Status::ok();
}

Status Interpreter::setParameter(const std::string& name, const Tensor& value) {
  Node* p = graph_.findNode(name);
  if (!p || p->op() != OpKind::Parameter)
    return Error::msg("the graph has no parameter named '" + name + "'");
  const TensorType& t = p->result()->type();
  if (value.shape() != t.shape || value.dtype() != t.dtype)
    return p->error("value for the parameter is " + value.type().str() + ", expected " + t.str());
  params_[name] = value;
  return Status::ok();
}

int Interpreter::updateParameters(const std::map<std::string, Tensor>& values) {
  int n = 0;
  for (auto& [name, current] : params_) {
    auto it = values.find(name);
    if (it == values.end()) continue;
    assert(it->second.shape() == current.shape());
    current = it->second.castTo(current.dtype());
    ++n;
  }
  return n;
}

const Tensor* Interpreter::parameter(const std::string& name) const {
  auto it = params_.find(name);
  return it == params_.end() ? nullptr : &it->second;
}

Expected<std::map<const Value*, Tensor>> Interpreter::execute(
    const std::map<std::string, Tensor>& inputs, const RunOptions& opts) {
  auto widen = [&](DType t) {
    return opts.precision == Precision::Float64 && t == DType::Float32 ? DType::Float64 : t;
  };
  // Bind the batch size from the inputs and check them.
  int64_t batch = -1;
  std::map<const Value*, Tensor> values;
  for (Node* in : graph_.inputs()) {
    auto it = inputs.find(in->name());
    const TensorType& want = in->result()->type();
    if (it == inputs.end())
      return in->error("no value given for input '" + in->name() + "' (" + want.str() + ")");
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
      return in->error("input '" + in->name() + "' is " + got.type().str() + ", expected " +
                       want.str() + (batch > 0 ? " with batch " + std::to_string(batch) : ""));
    values[in->result()] = got.castTo(widen(got.dtype()));
  }
  for (const auto& [name, t] : inputs)
    if (!graph_.findNode(name) || graph_.findNode(name)->op() != OpKind::Input)
      return Error::msg("the graph has no input named '" + name + "'");
  if (batch < 0) batch = 1;  // No batch dimension anywhere in the inputs.

  for (Node* p : graph_.parameters()) {
    auto it = params_.find(p->name());
    if (it == params_.end())
      return p->error("parameter has no value (call initializeParameters or setParameter)");
    values[p->result()] = it->second.castTo(widen(it->second.dtype()));
  }

  KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, graph_.topologicalOrder());
  const KernelTable& kernels = kernelTable();
  for (Node* n : order) {
    if (n->op() == OpKind::Input || n->op() == OpKind::Parameter) continue;
    KernelFn fn = kernels[static_cast<size_t>(n->op())];
    if (!fn) return n->error("the interpreter has no kernel for this op");
    KernelContext ctx{*n, {}, {}, opts.seed, opts.step};
    for (Value* v : n->operands()) ctx.in.push_back(&values.at(v));
    std::vector<Tensor> results;
    for (size_t r = 0; r < n->numResults(); ++r) {
      const TensorType& t = n->result(r)->type();
      results.emplace_back(widen(t.dtype), bindBatch(t.shape, batch));
    }
    for (Tensor& t : results) ctx.out.push_back(&t);
    KILN_RETURN_IF_ERROR(fn(ctx));
    for (size_t r = 0; r < n->numResults(); ++r) values[n->result(r)] = std::move(results[r]);
  }
  return values;
}

Expected<std::map<std::string, Tensor>> Interpreter::run(const std::map<std::string, Tensor>& inputs,
                                                         const RunOptions& opts) {
  KILN_ASSIGN_OR_RETURN(auto values, execute(inputs, opts));
  std::map<std::string, Tensor> out;
  for (const GraphOutput& o : graph_.outputs()) out[o.name] = values.at(o.value);
  return out;
}

Expected<std::map<std::string, Tensor>> Interpreter::runAll(
    const std::map<std::string, Tensor>& inputs, const RunOptions& opts) {
  KILN_ASSIGN_OR_RETURN(auto values, execute(inputs, opts));
  std::map<std::string, Tensor> out;
  for (auto& [v, t] : values) out[v->name()] = std::move(t);
  return out;
}

}  // namespace kiln
