// Interpreter kernels (placeholder until written).
#include "compiler/interpreter/Kernels.h"

namespace kiln {
void registerElementwiseKernels(KernelTable& t) {}
}  // namespace kiln
