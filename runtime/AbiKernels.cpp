// The runtime kernels that compiled graphs call (runtime/KilnABI.h), on Eigen.
#include <Eigen/Core>

#include <cstdlib>

#include "runtime/KilnABI.h"

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

template <class T>
void matmul(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, bool ta, const T* b,
            int64_t ldb, bool tb, T* c, int64_t ldc, T alpha, T beta) {
  using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>> C(c, m, n, Eigen::OuterStride<>(ldc));
  // beta == 0 must not read C (it may hold NaN from an earlier use of the arena).
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  // A row-major [k, m] matrix is op(A) = A^T in column-major order with the same stride.
  constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
  if (!ta && !tb) gemm<T, R, R>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
  else if (ta && !tb) gemm<T, Cm, R>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
  else if (!ta && tb) gemm<T, R, Cm>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
  else gemm<T, Cm, Cm>(m, n, k, a, lda, b, ldb, c, ldc, alpha);
}

}  // namespace

extern "C" {

void kiln_rt_matmul_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                        int32_t trans_a, const float* b, int64_t ldb, int32_t trans_b, float* c,
                        int64_t ldc, float alpha, float beta) {
  matmul<float>(m, n, k, a, lda, trans_a != 0, b, ldb, trans_b != 0, c, ldc, alpha, beta);
}

void kiln_rt_matmul_f64(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                        int32_t trans_a, const double* b, int64_t ldb, int32_t trans_b,
                        double* c, int64_t ldc, double alpha, double beta) {
  matmul<double>(m, n, k, a, lda, trans_a != 0, b, ldb, trans_b != 0, c, ldc, alpha, beta);
}

}  // extern "C"
