// simplify: algebraic identities that hold exactly in IEEE arithmetic. Each rewrite requires the
// replacement to have the same type (dtype and shape) as the value it replaces, so a broadcast
// that widens x (x[3] + zeros[2,3]) is never "simplified" away.
//   x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1 -> x   (exact except the sign of a zero: -0 + 0
//                                                    is +0; no op tells them apart except a
//                                                    division into +-inf. XLA makes the same
//                                                    trade.)
//   neg(neg(x))                           -> x
//   transpose(transpose(x, p), q)         -> transpose(x, p∘q), or x when that is the identity
//   transpose(x, identity)                -> x
//   reshape/flatten(reshape/flatten(x))   -> reshape(x) (only the final shape matters)
//   reshape/flatten(x) of x's own shape   -> x
//   cast(x) to x's dtype                  -> x
//   dropout/alpha_dropout(x), inference   -> x   (both are the identity outside training)
#include <numeric>

#include "compiler/passes/Pass.h"
#include "ir/Builder.h"

namespace kiln::passes {

namespace {

/// Whether `v` is a constant with every element equal to `c`.
bool isSplat(const Value* v, double c) {
  const Node* n = v->node();
  if (n->op() != OpKind::Constant) return false;
  std::vector<double> vals = n->floats("value");
  if (vals.empty()) return false;
  for (double x : vals)
    if (x != c) return false;
  return true;
}

bool isZero(const Value* v) { return isSplat(v, 0.0); }

bool sameType(const Value* a, const Value* b) { return a->type() == b->type(); }

std::vector<int64_t> fullPerm(const Node& n, size_t rank) {
  std::vector<int64_t> p = n.ints("perm");
  if (p.empty()) {
    p.resize(rank);
    std::iota(p.rbegin(), p.rend(), 0);  // Empty perm reverses the dimensions.
  }
  return p;
}

class Simplify final : public Pass {
 public:
  std::string_view name() const override { return "simplify"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    KILN_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topologicalOrder());
    bool changed = false;
    for (Node* n : order) {
      Value* y = n->numResults() == 1 ? n->result() : nullptr;
      if (!y) continue;
      Value* repl = replacement(g, *n);
      if (!repl || repl == y || !sameType(repl, y)) continue;
      g.replaceAllUsesWith(y, repl);
      g.eraseNode(n);
      changed = true;
    }
    return changed;
  }

 private:
  /// The value that can stand for n's result, if any (possibly a new node).
  static Value* replacement(Graph& g, Node& n) {
    auto operandIf = [&](size_t i, bool cond) -> Value* {
      return cond && sameType(n.operand(i), n.result()) ? n.operand(i) : nullptr;
    };
    switch (n.op()) {
      case OpKind::Add:
        if (Value* v = operandIf(0, isZero(n.operand(1)))) return v;
        return operandIf(1, isZero(n.operand(0)));
      case OpKind::Sub: return operandIf(0, isZero(n.operand(1)));
      case OpKind::Mul:
        if (Value* v = operandIf(0, isSplat(n.operand(1), 1.0))) return v;
        return operandIf(1, isSplat(n.operand(0), 1.0));
      case OpKind::Div: return operandIf(0, isSplat(n.operand(1), 1.0));
      case OpKind::Neg:
        if (n.operand(0)->node()->op() == OpKind::Neg) return n.operand(0)->node()->operand(0);
        return nullptr;
      case OpKind::Dropout:
      case OpKind::AlphaDropout: return n.b("training") ? nullptr : n.operand(0);
      case OpKind::Cast: return operandIf(0, n.operand(0)->type().dtype == n.dtype("dtype"));
      case OpKind::Transpose: {
        Value* x = n.operand(0);
        size_t rank = x->type().shape.size();
        std::vector<int64_t> q = fullPerm(n, rank);
        Node* inner = x->node();
        std::vector<int64_t> composed = q;
        if (inner->op() == OpKind::Transpose) {
          // y = transpose(x0, p): y.dim[i] = x0.dim[p[i]]; z = transpose(y, q): z.dim[i] =
          // x0.dim[p[q[i]]], so z = transpose(x0, r) with r[i] = p[q[i]].
          std::vector<int64_t> p = fullPerm(*inner, rank);
          for (size_t i = 0; i < rank; ++i) composed[i] = p[size_t(q[i])];
          x = inner->operand(0);
        }
        bool identity = true;
        for (size_t i = 0; i < rank; ++i) identity &= composed[i] == int64_t(i);
        if (identity) return x;
        if (x == n.operand(0)) return nullptr;
        Builder b(g);
        b.setPrefix(n.name() + "/");
        b.setLoc(n.loc());
        return b.op(OpKind::Transpose, {x}, {{"perm", composed}}, "composed");
      }
      case OpKind::Reshape:
      case OpKind::Flatten: {
        Value* x = n.operand(0);
        if (sameType(x, n.result())) return x;
        OpKind inner = x->node()->op();
        if (inner != OpKind::Reshape && inner != OpKind::Flatten) return nullptr;
        Value* x0 = x->node()->operand(0);
        if (sameType(x0, n.result())) return x0;
        // Only the final shape matters; the result's -1 (if any) is the batch.
        Builder b(g);
        b.setPrefix(n.name() + "/");
        b.setLoc(n.loc());
        Value* r = b.reshape(x0, n.result()->type().shape);
        if (!r || !sameType(r, n.result())) {
          if (r) g.eraseNode(r->node());
          return nullptr;
        }
        return r;
      }
      default: return nullptr;
    }
  }
};

}  // namespace

std::unique_ptr<Pass> createSimplify() { return std::make_unique<Simplify>(); }

}  // namespace kiln::passes
