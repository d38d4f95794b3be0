/* The C ABI between compiled Kiln graphs and the runtime: the kernels generated code calls and the
   entry points it exports. Shared by the code generator (which emits calls to these names) and the
   runtime (which defines them), so JIT and AOT resolve the same symbols. Plain C, so that a
   generated header can include it from C or C++. */
#ifndef KILN_RUNTIME_KILNABI_H
#define KILN_RUNTIME_KILNABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Entry points of a compiled graph NAME (one set per graph) --------------------------------
   int32_t NAME_predict(int64_t batch, const void* const* inputs, void* const* outputs,
                        void* const* params, void* arena);
     batch    the size of the batch dimension (-1 in the graph's shapes), >= 1.
     inputs   one pointer per graph input, in the graph's input order: dense row-major data of the
              input's dtype with the batch dimension bound (bool is one byte, 0 or 1).
     outputs  one pointer per graph output, in the graph's output order, same layout; written.
     params   one pointer per parameter, in the graph's parameter order (read only in inference).
     arena    NAME_arena_size(batch) bytes, aligned to KILN_ARENA_ALIGNMENT, for every
              intermediate; its contents need not be kept between calls.
     Returns 0, or the 1-based id of a failed run-time check (id 1: batch < 1; others: a label
     outside the classes, an integer division by zero, a cast out of range); the outputs are
     then unspecified. The generated code itself allocates nothing.
   int64_t NAME_arena_size(int64_t batch);   bytes of arena a call with this batch needs. */
typedef int32_t (*kiln_predict_fn)(int64_t batch, const void* const* inputs, void* const* outputs,
                                   void* const* params, void* arena);
typedef int64_t (*kiln_arena_size_fn)(int64_t batch);

#define KILN_ARENA_ALIGNMENT 64
#define KILN_PREDICT_SUFFIX "_predict"
#define KILN_ARENA_SIZE_SUFFIX "_arena_size"

/* ---- Runtime kernels --------------------------------------------------------------------------
   C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, all row-major with leading dimensions
   lda, ldb, ldc (elements per row as stored); op(A) = A^T when trans_a is nonzero (A is then
   stored [k,m]). beta == 0 ignores C's prior contents (NaN included). Single-threaded for now. */
#define KILN_RT_MATMUL_F32 "kiln_rt_matmul_f32"
#define KILN_RT_MATMUL_F64 "kiln_rt_matmul_f64"
void kiln_rt_matmul_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                        int32_t trans_a, const float* b, int64_t ldb, int32_t trans_b, float* c,
                        int64_t ldc, float alpha, float beta);
void kiln_rt_matmul_f64(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                        int32_t trans_a, const double* b, int64_t ldb, int32_t trans_b,
                        double* c, int64_t ldc, double alpha, double beta);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_KILNABI_H */
