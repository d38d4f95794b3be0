// Gradient rules (placeholder until written).
#include "compiler/autodiff/GradRules.h"

namespace kiln {
void registerNNGrads(GradTable& t) {}
}  // namespace kiln
