// The runtime kernels that compiled graphs call (runtime/KilnABI.h), on Eigen.
#include <Eigen/Core>

#include "runtime/KilnABI.h"

namespace {

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstView = Eigen::Map<const RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using View = Eigen::Map<RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
void matmul(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, bool ta, const T* b,
            int64_t ldb, bool tb, T* c, int64_t ldc, T alpha, T beta) {
  // op(A) is [m,k]; stored as [k,m] when transposed.
  ConstView<T> A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  ConstView<T> B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  View<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  // beta == 0 must not read C (it may hold NaN from an earlier use of the arena).
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  // noalias(): the product accumulates straight into C, with no temporary matrix.
  if (!ta && !tb) C.noalias() += alpha * A * B;
  else if (ta && !tb) C.noalias() += alpha * A.transpose() * B;
  else if (!ta && tb) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
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
