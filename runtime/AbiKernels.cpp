// The runtime kernels that compiled graphs call (runtime/KilnABI.h), on Eigen and the runtime's
// thread pool.
#include <Eigen/Core>

#include <algorithm>
#include <cstdlib>

#include "runtime/AbiKernels.h"
#include "runtime/KilnABI.h"
#include "runtime/ThreadPool.h"

namespace {

using Eigen::Index;

/// Eigen's GEMM packs panels of A and B into scratch blocks that it allocates on every call
/// beyond 128 KB (EIGEN_STACK_ALLOCATION_LIMIT). This blocking hands it a per-thread workspace
/// instead, grown on first use: a steady stream of predictions allocates nothing.
template <class T>
class WorkspaceBlocking
    : public Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic,
                                                  Eigen::Dynamic, Eigen::Dynamic, 1, false> {
 public:
  WorkspaceBlocking(Index m, Index n, Index k)
      : Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                             Eigen::Dynamic, 1, false>(m, n, k, 1, true) {
    Index sizeA = (this->kc() * this->mc() + 15) / 16 * 16;
    Index sizeB = this->kc() * this->nc();
    T* ws = workspace(sizeA + sizeB);
    this->m_blockA = ws;
    this->m_blockB = ws + sizeA;
  }
  // The base class frees its blocks; these belong to the workspace.
  ~WorkspaceBlocking() { this->m_blockA = this->m_blockB = nullptr; }

 private:
  static T* workspace(Index elements) {
    struct Buffer {
      T* data = nullptr;
      Index size = 0;
      ~Buffer() { std::free(data); }
    };
    thread_local Buffer buf;
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
void gemm(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T* c, Index ldc,
          T alpha) {
  WorkspaceBlocking<T> blocking(m, n, k);
  Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                 Eigen::RowMajor, 1>::run(m, n, k, a, lda, b, ldb, c,
                                                                          1, ldc, alpha, blocking);
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
  using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>> C(p.c, p.m, p.n,
                                                                 Eigen::OuterStride<>(p.ldc));
  // beta == 0 must not read C (it may hold NaN from an earlier use of the arena).
  if (p.beta == T(0)) C.setZero();
  else if (p.beta != T(1)) C *= p.beta;
  // Eigen's blocking heuristic divides by the sizes: an empty product is just the scaling.
  if (p.m == 0 || p.n == 0 || p.k == 0) return;
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
