// Interpreter kernels (placeholder until written).
#include "compiler/interpreter/Kernels.h"

namespace kiln {
void registerShapeKernels(KernelTable& t) {}
}  // namespace kiln
