// Interpreter kernels (placeholder until written).
#include "compiler/interpreter/Kernels.h"

namespace kiln {
void registerNNKernels(KernelTable& t) {}
}  // namespace kiln
