// Gradient rules (placeholder until written).
#include "compiler/autodiff/GradRules.h"

namespace kiln {
void registerElementwiseGrads(GradTable& t) {}
}  // namespace kiln
