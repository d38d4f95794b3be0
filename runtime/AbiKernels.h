// C++ view of the runtime kernels' threading decisions (the kernels themselves are KilnABI.h's).
#pragma once

#include <cstdint>

#include "runtime/KilnABI.h"

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

/// Whether kiln_rt_matmul_* computes C = op(A) op(B) (alpha 1, beta 0) with the unpacked
/// register-tiled kernel (runtime/SmallGemm.h) rather than Eigen's: then each element of C is
/// exactly the fused multiply-add chain c = fma(a_i0, b_0j, 0), c = fma(a_i1, b_1j, c), ... over
/// k in order, in the precision of T (tests hold it to that, bit for bit).
bool unpackedMatmul(int64_t m, int64_t n, int64_t k, bool ta, bool tb, int elementBytes);

/// Rows of C per epilogue call of kiln_rt_matmul_*_blocked for these sizes: a multiple of 8.
int64_t defaultEpilogueBlockRows(int64_t m, int64_t n, int64_t k, int elementBytes);

/// kiln_rt_matmul_*_blocked with the block size chosen: blockRows rows of C per epilogue call
/// (rounded up to a multiple of 8; <= 0: defaultEpilogueBlockRows). The result does not depend on
/// blockRows or on the thread count, bit for bit. T is float or double.
template <class T>
void matmulBlocked(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, bool ta, const T* b,
                   int64_t ldb, bool tb, T* c, int64_t ldc, kiln_range_fn epilogue, void* ctx,
                   int64_t blockRows);

}  // namespace kiln::rt
