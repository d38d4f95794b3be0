// fold-batch-norm: an inference-mode batch norm that directly follows a matrix product (with or
// without a bias add) is folded into the product's weights and bias.
#include <optional>

#include "compiler/passes/Pass.h"
#include "ir/Builder.h"

namespace kiln::passes {

namespace {

/// The one node reading `v` (through any number of its operand slots), or null.
Node* soleUser(const Value* v) {
  if (v->users().empty()) return nullptr;
  Node* u = v->users().front();
  for (Node* o : v->users())
    if (o != u) return nullptr;
  return u;
}

bool isGraphOutput(const Graph& g, const Value* v) {
  for (const GraphOutput& o : g.outputs())
    if (o.value == v) return true;
  return false;
}

/// A matched matmul [-> add bias] -> batch_norm chain.
struct Match {
  Node* matmul = nullptr;
  Node* biasAdd = nullptr;  // null without a bias
  Value* bias = nullptr;
  Node* bn = nullptr;
};

/// Whether `bn` can be folded into the product that feeds it, and the chain if so. The
/// product and the bias add must have no other user (nor be a graph output): folding changes
/// the values they compute.
std::optional<Match> match(const Graph& g, Node* bn) {
  if (bn->op() != OpKind::BatchNorm || bn->b("training")) return std::nullopt;
  const TensorType& xt = bn->operand(0)->type();
  if (xt.shape.size() != 2) return std::nullopt;
  int64_t axis = bn->i("axis");
  if (axis != -1 && axis != 1) return std::nullopt;  // Must normalize the columns (features).
  Match m;
  m.bn = bn;
  Node* x = bn->operand(0)->node();
  auto exclusive = [&](const Node* n, const Node* user) {
    return soleUser(n->result()) == user && !isGraphOutput(g, n->result());
  };
  if (x->op() == OpKind::Add) {
    if (!exclusive(x, bn)) return std::nullopt;
    for (int k = 0; k < 2; ++k) {
      Node* mm = x->operand(k)->node();
      const TensorType& bt = x->operand(1 - k)->type();
      int64_t units = xt.shape[1];
      bool vectorBias = (bt.shape == Shape{units}) || (bt.shape == Shape{1, units});
      if (mm->op() == OpKind::MatMul && vectorBias && mm->result()->type() == xt) {
        m.matmul = mm;
        m.biasAdd = x;
        m.bias = x->operand(1 - k);
        break;
      }
    }
    if (!m.matmul) return std::nullopt;
  } else if (x->op() == OpKind::MatMul) {
    m.matmul = x;
  } else {
    return std::nullopt;
  }
  Node* mm = m.matmul;
  if (!exclusive(mm, m.biasAdd ? m.biasAdd : bn)) return std::nullopt;
  if (mm->operand(1)->type().shape.size() != 2) return std::nullopt;
  if (mm->operand(0) == mm->operand(1)) return std::nullopt;  // x·x: scaling W scales x too.
  return m;
}

class FoldBatchNorm final : public Pass {
 public:
  std::string_view name() const override { return "fold-batch-norm"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
    bool changed = false;
    for (Node* n : order) {
      std::optional<Match> m = match(g, n);
      if (!m) continue;
      KILN_RETURN_IF_ERROR(fold(g, *m));
      changed = true;
    }
    return changed;
  }

 private:
  // Batch norm in inference form, per output column j, with moving statistics mu, var:
  //   bn(z)_j = gamma_j * (z_j - mu_j) / sqrt(var_j + eps) + beta_j = s_j * (z_j - mu_j) + beta_j
  // with s = gamma / sqrt(var + eps). For z = a·W + b (b = 0 without a bias):
  //   z_j = sum_k a_k W_kj + b_j, so
  //   bn(z)_j = sum_k a_k (W_kj s_j) + (b_j - mu_j) s_j + beta_j = (a·W')_j + b'_j
  // with W' = W·diag(s) (column j scaled by s_j) and b' = (b - mu) * s + beta (chapter11.md,
  // "Folding"). With transpose_b the product reads W as [units, in], so row j is scaled instead.
  // Exact in real arithmetic; in floating point the two agree to rounding.
  // W' and b' are nodes computed from the parameters (parameters are run-time inputs of
  // compiled code); hoistParameterMath moves them into the prepare graph, evaluated once at
  // load time, so a prediction pays only the folded product.
  static Status fold(Graph& g, const Match& m) {
    Node* bn = m.bn;
    Node* mm = m.matmul;
    Builder b(g);
    b.setPrefix(bn->name() + "/folded_");
    b.setLoc(bn->loc());
    const DType dt = bn->result()->type().dtype;
    Value* gamma = bn->operand(1);
    Value* beta = bn->operand(2);
    Value* mean = bn->operand(3);
    Value* var = bn->operand(4);
    Value* w = mm->operand(1);
    const int64_t units = bn->operand(0)->type().shape[1];
    Value* s = b.op(OpKind::Mul,
                    {gamma, b.op(OpKind::Rsqrt, {b.add(var, b.scalar(bn->f("epsilon"), dt))})}, {},
                    "scale");
    Value* sForW = mm->b("transpose_b") ? b.reshape(s, {units, 1}) : s;
    Value* w2 = b.op(OpKind::Mul, {w, sForW}, {}, "kernel");
    Value* bias = m.bias;
    if (bias && bias->type().shape.size() != 1) bias = b.reshape(bias, {units});
    Value* shifted = bias ? b.sub(bias, mean) : b.neg(mean);
    Value* b2 = b.op(OpKind::Add, {b.mul(shifted, s), beta}, {}, "bias");
    Value* product = b.op(
        OpKind::MatMul, {mm->operand(0), w2},
        {{"transpose_a", mm->b("transpose_a")}, {"transpose_b", mm->b("transpose_b")}}, "matmul");
    Value* y = b.op(OpKind::Add, {product, b2}, {}, "bias_add");
    if (!b.ok()) return b.takeStatus();
    if (y->type() != bn->result()->type())
      return bn->error("internal: folded result is " + y->type().str() + ", batch norm gave " +
                       bn->result()->type().str());
    g.replaceAllUsesWith(bn->result(0), y);
    // Inference batch norm passes its moving statistics through as results 1 and 2.
    g.replaceAllUsesWith(bn->result(1), mean);
    g.replaceAllUsesWith(bn->result(2), var);
    g.eraseNode(bn);
    if (m.biasAdd) g.eraseNode(m.biasAdd);
    g.eraseNode(mm);
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldBatchNorm() { return std::make_unique<FoldBatchNorm>(); }

}  // namespace kiln::passes
