// C++ view of the runtime kernels' threading decisions (the kernels themselves are KilnABI.h's).
#pragma once

#include <cstdint>

namespace kiln::rt {

/// How kiln_rt_matmul_* splits a product C[m,n] (+)= op(A)[m,k] op(B)[k,n] across threads.
struct MatmulSplit {
  enum class Dim { None, Rows, Cols };
  /// None: one thread computes all of C.
  Dim dim = Dim::None;
  /// Rows or columns of C per chunk are multiples of this (Partition's grain).
  int64_t grain = 0;
  /// Chunks the product runs in (1 for None).
  int64_t chunks = 1;
};

/// The split for these sizes and thread count: over rows of C when each thread gets at least
/// 8 rows and enough work, else over columns when that gives each enough, else none.
/// `elementBytes` is sizeof(float) or sizeof(double).
MatmulSplit planMatmulSplit(int64_t m, int64_t n, int64_t k, int threads, int elementBytes);

}  // namespace kiln::rt
