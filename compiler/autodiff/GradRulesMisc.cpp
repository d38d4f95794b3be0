// Gradient rules for conversions.
#include "compiler/autodiff/GradRules.h"

namespace kiln {
namespace {

// d cast(x)/dx = 1 between float types: the gradient comes back in x's type. An integer x
// carries no gradient (autodiff never asks for one).
std::vector<Value*> castGrad(GradContext& c) {
  DType from = c.x()->type().dtype;
  if (!isFloat(from) || !c.want(0)) return {nullptr};
  return {c.b.op(OpKind::Cast, {c.g()}, {{"dtype", from}})};
}

}  // namespace

void registerMiscGrads(GradTable& t) { t[size_t(OpKind::Cast)].fn = &castGrad; }

}  // namespace kiln
