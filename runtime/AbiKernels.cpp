// The runtime kernels that compiled graphs call (runtime/KilnABI.h), on Eigen and the runtime's
// thread pool.
//
// This file is compiled for the host CPU (-march=native, KILN_NATIVE_KERNELS) and the rest of
// Kiln is not. Eigen's GEMM templates instantiated elsewhere (the interpreter) with the same
// arguments would be the same symbols, and the linker would keep one copy for both, possibly the
// baseline SSE2 one. Renaming Eigen's namespace here gives every Eigen symbol of this file a
// name of its own. The standard headers come first, so the rename touches Eigen alone.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <functional>
#include <limits>

#define Eigen KilnNativeEigen
#include <Eigen/Core>

#include "runtime/AbiKernels.h"
#include "runtime/KilnABI.h"
#include "runtime/ThreadPool.h"

namespace {

using GemmIndex = Eigen::Index;

/// Eigen's GEMM packs panels of A and B into scratch blocks that it allocates on every call
/// beyond 128 KB (EIGEN_STACK_ALLOCATION_LIMIT). This blocking hands it a workspace instead,
/// grown on first use: a steady stream of predictions allocates nothing. Chunk i of a parallel
/// product uses workspace i, whichever thread runs it (the caller may take a worker's chunk),
/// and a product run on one thread uses that thread's own. The block sizes are Eigen's own for
/// one thread (what gemm_blocking_space computes): Eigen computes a row-major C as
/// C^T = B^T A^T, so its rows are our columns.
template <class T>
class WorkspaceBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  WorkspaceBlocking(GemmIndex m, GemmIndex n, GemmIndex k) {
    GemmIndex kc = k, mc = n, nc = m;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, GemmIndex>(kc, mc, nc, 1);
    this->m_kc = kc;
    this->m_mc = mc;
    this->m_nc = nc;
    GemmIndex sizeA = (kc * mc + 15) / 16 * 16;
    T* ws = workspace(sizeA + kc * nc);
    this->m_blockA = ws;
    this->m_blockB = ws + sizeA;
  }

 private:
  struct Buffer {
    T* data = nullptr;
    GemmIndex size = 0;
    ~Buffer() { std::free(data); }
  };

  // The first use of a thread_local with a destructor in a thread registers that destructor,
  // which allocates (glibc's __cxa_thread_atexit_impl: 32 bytes). Pool workers only run chunks,
  // so they must never touch this one: otherwise a worker that first gets a chunk in a later
  // call (it woke too late in the earlier ones) allocates in the middle of a prediction.
  static Buffer& threadBuffer() {
    thread_local Buffer buf;
    return buf;
  }

  static T* workspace(GemmIndex elements) {
    // Static storage: no allocation until a chunk first runs.
    static Buffer chunkBuffers[kiln::rt::kMaxThreads];
    int chunk = kiln::rt::currentChunk();
    Buffer& buf = chunk >= 0 ? chunkBuffers[chunk] : threadBuffer();
    if (buf.size < elements) {
      std::free(buf.data);
      size_t bytes = (static_cast<size_t>(elements) * sizeof(T) + 63) / 64 * 64;
      buf.data = static_cast<T*>(std::aligned_alloc(64, bytes));
      buf.size = elements;
    }
    return buf.data;
  }
};

template <class T, int LhsOrder, int RhsOrder>
void gemm(GemmIndex m, GemmIndex n, GemmIndex k, const T* a, GemmIndex lda, const T* b,
          GemmIndex ldb, T* c, GemmIndex ldc, T alpha) {
  WorkspaceBlocking<T> blocking(m, n, k);
  Eigen::internal::general_matrix_matrix_product<GemmIndex, T, LhsOrder, false, T, RhsOrder, false,
                                                 Eigen::RowMajor, 1>::run(m, n, k, a, lda, b, ldb, c,
                                                                          1, ldc, alpha, blocking);
}

/// c[1,n] += alpha * a[1,k] op(B)[k,n] with Eigen's matrix-vector kernels, which stream B
/// without packing it: at batch 1 packing B costs more than the product. Eigen computes
/// c^T = op(B)^T a^T, where op(B)^T [n,k] is B stored [k,n] read column-major (trans_b = 0) or B
/// stored [n,k] read row-major (trans_b = 1). a must be contiguous.
template <class T>
void gemv(GemmIndex n, GemmIndex k, const T* a, const T* b, GemmIndex ldb, bool tb, T* c,
          T alpha) {
  using namespace Eigen::internal;
  using Vector = const_blas_data_mapper<T, GemmIndex, Eigen::ColMajor>;
  if (!tb) {
    using Matrix = const_blas_data_mapper<T, GemmIndex, Eigen::ColMajor>;
    general_matrix_vector_product<GemmIndex, T, Matrix, Eigen::ColMajor, false, T, Vector,
                                  false>::run(n, k, Matrix(b, ldb), Vector(a, 1), c, 1, alpha);
  } else {
    using Matrix = const_blas_data_mapper<T, GemmIndex, Eigen::RowMajor>;
    general_matrix_vector_product<GemmIndex, T, Matrix, Eigen::RowMajor, false, T, Vector,
                                  false>::run(n, k, Matrix(b, ldb), Vector(a, 1), c, 1, alpha);
  }
}

/// One call's operands: C[m,n] = alpha * op(A) * op(B) + beta * C (KilnABI.h).
template <class T>
struct Product {
  int64_t m, n, k;
  const T* a;
  int64_t lda;
  bool ta;
  const T* b;
  int64_t ldb;
  bool tb;
  T* c;
  int64_t ldc;
  T alpha, beta;
};

template <class T>
void matmulSerial(const Product<T>& p) {
  // beta == 0 must not read C (it may hold NaN from an earlier use of the arena). Plain loops,
  // not Eigen expressions, for the same reason as GemmIndex.
  if (p.beta != T(1))
    for (int64_t i = 0; i < p.m; ++i) {
      T* row = p.c + i * p.ldc;
      if (p.beta == T(0)) std::fill(row, row + p.n, T(0));
      else
        for (int64_t j = 0; j < p.n; ++j) row[j] *= p.beta;
    }
  // Eigen's blocking heuristic divides by the sizes: an empty product is just the scaling.
  if (p.m == 0 || p.n == 0 || p.k == 0) return;
  // One row of A stored contiguously (a [1,k] row, or a [k,1] column with stride 1).
  if (p.m == 1 && (!p.ta || p.lda == 1)) return gemv(p.n, p.k, p.a, p.b, p.ldb, p.tb, p.c, p.alpha);
  // A row-major [k, m] matrix is op(A) = A^T in column-major order with the same stride.
  constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
  auto [m, n, k, a, lda, ta, b, ldb, tb, c, ldc, alpha, beta] = p;
  if (!ta && !tb) gemm<T, R, R>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
  else if (ta && !tb) gemm<T, Cm, R>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
  else if (!ta && tb) gemm<T, R, Cm>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
  else gemm<T, Cm, Cm>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
}

/// Splits a product across the runtime's threads, each computing whole elements of C with the
/// serial kernel. Eigen's blocking over k depends on k alone (computeProductBlockingSizes), and
/// every element's dot product is accumulated k by k inside a k-block whatever tile it falls in,
/// so each element sums in the same order for any split: results are bit-identical across
/// thread counts (ThreadPoolTest checks it on ragged shapes and every transpose).
template <class T>
void matmul(const Product<T>& p) {
  using kiln::rt::MatmulSplit;
  MatmulSplit split =
      kiln::rt::planMatmulSplit(p.m, p.n, p.k, kiln::rt::numThreads(), sizeof(T));
  if (split.dim == MatmulSplit::Dim::Rows) {
    kiln::rt::parallelFor(p.m, split.grain, [&p](int64_t r0, int64_t r1) {
      Product<T> q = p;
      q.m = r1 - r0;
      q.a = p.ta ? p.a + r0 : p.a + r0 * p.lda;
      q.c = p.c + r0 * p.ldc;
      matmulSerial(q);
    });
  } else if (split.dim == MatmulSplit::Dim::Cols) {
    kiln::rt::parallelFor(p.n, split.grain, [&p](int64_t c0, int64_t c1) {
      Product<T> q = p;
      q.n = c1 - c0;
      q.b = p.tb ? p.b + c0 * p.ldb : p.b + c0;
      q.c = p.c + c0;
      matmulSerial(q);
    });
  } else {
    matmulSerial(p);
  }
}

}  // namespace

namespace kiln::rt {

namespace {
/// The least work (multiply-adds) worth handing to another thread: waking a worker and waiting
/// for it costs a few microseconds when it is asleep, on the order of this many multiply-adds.
constexpr int64_t kMinChunkWork = int64_t(1) << 17;

int64_t roundUp(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }
}  // namespace

MatmulSplit planMatmulSplit(int64_t m, int64_t n, int64_t k, int threads, int elementBytes) {
  MatmulSplit s;
  if (threads <= 1 || m <= 0 || n <= 0 || k <= 0 || m * n * k < 2 * kMinChunkWork) return s;
  // Rows of C in multiples of 8: Eigen computes row-major C as C^T = op(B)^T op(A)^T, where our
  // rows are its columns, packed 4 (or 8) at a time.
  int64_t rowGrain = roundUp(std::max<int64_t>(1, kMinChunkWork / (n * k)), 8);
  if (m >= 2 * rowGrain) {
    s.dim = MatmulSplit::Dim::Rows;
    s.grain = rowGrain;
    s.chunks = Partition::of(m, rowGrain, threads).chunks;
    return s;
  }
  // Few rows (small batches): split the columns instead, in whole cache lines of C.
  int64_t colGrain = roundUp(std::max<int64_t>(1, kMinChunkWork / (m * k)), 64 / elementBytes);
  if (n >= 2 * colGrain) {
    s.dim = MatmulSplit::Dim::Cols;
    s.grain = colGrain;
    s.chunks = Partition::of(n, colGrain, threads).chunks;
  }
  return s;
}

}  // namespace kiln::rt

extern "C" {

void kiln_rt_matmul_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                        int32_t trans_a, const float* b, int64_t ldb, int32_t trans_b, float* c,
                        int64_t ldc, float alpha, float beta) {
  matmul<float>({m, n, k, a, lda, trans_a != 0, b, ldb, trans_b != 0, c, ldc, alpha, beta});
}

void kiln_rt_matmul_f64(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                        int32_t trans_a, const double* b, int64_t ldb, int32_t trans_b,
                        double* c, int64_t ldc, double alpha, double beta) {
  matmul<double>({m, n, k, a, lda, trans_a != 0, b, ldb, trans_b != 0, c, ldc, alpha, beta});
}

}  // extern "C"
