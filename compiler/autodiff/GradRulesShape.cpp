// Gradient rules (placeholder until written).
#include "compiler/autodiff/GradRules.h"

namespace kiln {
void registerShapeGrads(GradTable& t) {}
}  // namespace kiln
