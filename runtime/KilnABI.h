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
   SYMBOL is NAME_ENTRY, ENTRY chosen by whoever compiles the graph: "predict" (inference graphs,
   the default), "train_step" (training-step graphs), "evaluate" (evaluation graphs).

   int32_t SYMBOL(int64_t batch, const void* const* inputs, void* const* outputs,
                  void* const* params, void* arena, uint64_t seed, int64_t step);
     batch    the size of the batch dimension (-1 in the graph's shapes), >= 1.
     inputs   one pointer per graph input, in the graph's input order: dense row-major data of the
              input's dtype with the batch dimension bound (bool is one byte, 0 or 1).
     outputs  one pointer per returned graph output, in the graph's output order, same layout;
              written. For inference and evaluation graphs that is every output; for a
              training-step graph compiled to update its state, the outputs that update state
              (see below) are left out of this array.
     params   one pointer per parameter, in the graph's parameter order. Read only, except that a
              training-step graph compiled to update its state writes the new values into them.
     arena    SYMBOL_arena_size(batch) bytes, aligned to KILN_ARENA_ALIGNMENT, for every
              intermediate; its contents need not be kept between calls.
     seed, step  key every random number (dropout, alpha dropout and rrelu masks) exactly as the
              interpreter does: node n draws from runtime/Random.h's
              RandomStream::forStep(seed, n's name, step), so a compiled step and an interpreted
              one with the same seed and step use the same masks. Graphs without random ops
              ignore both.
     No two of these buffers (each input, output and parameter, and the arena) may overlap: the
     generated code assumes it, as BLAS does of its arguments (it lets loops that update state in
     place or read a stored scalar vectorize).
     Returns 0, or the 1-based id of a failed run-time check (id 1: batch < 1; others: a label
     outside the classes, an integer division by zero, a cast out of range); the outputs (and the
     state, for a training step) are then unspecified. The generated code allocates nothing.
   int64_t SYMBOL_arena_size(int64_t batch);   bytes of arena a call with this batch needs.

   State updates (training steps): a training-step graph returns the new value of each state
   tensor (weights, optimizer slots "<param>/<slot>", batch-norm moving statistics, the step
   counter "train/step", ...) as an output named after the parameter. Compiled to update state,
   such an output is not returned: the entry point writes it into params[i] of the parameter of
   that name, after every read of the old value (an update that would overwrite a value a later
   loop still reads is computed into the arena and copied in at the end), so after a successful
   call params hold the state of the next step. The compiler lists which outputs are returned and
   which update state (kiln::codegen::LoweredGraph). */
typedef int32_t (*kiln_entry_fn)(int64_t batch, const void* const* inputs, void* const* outputs,
                                 void* const* params, void* arena, uint64_t seed, int64_t step);
typedef int64_t (*kiln_arena_size_fn)(int64_t batch);

#define KILN_ARENA_ALIGNMENT 64
#define KILN_ENTRY_PREDICT "predict"
#define KILN_ENTRY_TRAIN_STEP "train_step"
#define KILN_ENTRY_EVALUATE "evaluate"
#define KILN_ARENA_SIZE_SUFFIX "_arena_size"

/* ---- Runtime kernels --------------------------------------------------------------------------
   C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, all row-major with leading dimensions
   lda, ldb, ldc (elements per row as stored); op(A) = A^T when trans_a is nonzero (A is then
   stored [k,m]). beta == 0 ignores C's prior contents (NaN included). Multi-threaded on the
   runtime's pool (kiln_rt_set_num_threads): products large enough to pay for it are split over
   the rows of C (over its columns when C has too few rows), each thread computing whole elements.
   Each element's sum over k runs in the same order whatever the split, so results are
   bit-identical for every thread count (tests/ThreadPoolTest.cpp checks it). No heap allocation
   once a thread's workspace has grown to the largest product it has run. */
#define KILN_RT_MATMUL_F32 "kiln_rt_matmul_f32"
#define KILN_RT_MATMUL_F64 "kiln_rt_matmul_f64"
void kiln_rt_matmul_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                        int32_t trans_a, const float* b, int64_t ldb, int32_t trans_b, float* c,
                        int64_t ldc, float alpha, float beta);
void kiln_rt_matmul_f64(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                        int32_t trans_a, const double* b, int64_t ldb, int32_t trans_b,
                        double* c, int64_t ldc, double alpha, double beta);

/* ---- Threads --------------------------------------------------------------------------------
   kiln_rt_set_num_threads(n): n >= 1 sets the threads the runtime's kernels use (at most 256);
     n <= 0 restores the default: KILN_NUM_THREADS if it is set to a valid count, else the cores
     this process may run on. Waits for a parallel loop under way in another thread.
   kiln_rt_get_num_threads(): the current count, >= 1.
   kiln_rt_parallel_for(n, grain, body, ctx): calls body(begin, end, ctx) on contiguous chunks
     covering [0, n) exactly once, in parallel, and returns when all are done. Chunks are whole
     multiples of grain (the last may be shorter), at most one per thread, split the same way for
     the same (n, grain, thread count); the caller runs chunk 0 and takes any chunk no worker has
     started by the time it is done. Nested calls (from
     inside a body) and calls while another thread's loop holds the pool run serially on the
     calling thread. No heap allocation except when the workers first start. */
#define KILN_RT_SET_NUM_THREADS "kiln_rt_set_num_threads"
#define KILN_RT_GET_NUM_THREADS "kiln_rt_get_num_threads"
#define KILN_RT_PARALLEL_FOR "kiln_rt_parallel_for"
typedef void (*kiln_range_fn)(int64_t begin, int64_t end, void* ctx);
void kiln_rt_set_num_threads(int n);
int kiln_rt_get_num_threads(void);
void kiln_rt_parallel_for(int64_t n, int64_t grain, kiln_range_fn body, void* ctx);

/* ---- Matmul with an epilogue ---------------------------------------------------------------
   C[m,n] = op(A)[m,k] * op(B)[k,n] (same layout rules as above; C's prior contents ignored),
   calling epilogue(row_begin, row_end, ctx) on consecutive blocks of rows of C as soon as each
   is final, while it is still in cache, so that bias, activation and the like need no second pass
   over C. Blocks are block_rows rows rounded up to a multiple of 8 (block_rows <= 0: the
   runtime's choice for these sizes), the last one shorter. B is packed once and shared; the row blocks run on the runtime's pool, so epilogue is
   called from several threads at once and must only touch rows [row_begin, row_end) of what it
   writes. Blocks cover [0, m) exactly once. epilogue may be null. Results are bit-identical for
   every thread count and block size (tests/BlockedMatmulTest.cpp). No heap allocation once the workspaces have
   grown. */
#define KILN_RT_MATMUL_F32_BLOCKED "kiln_rt_matmul_f32_blocked"
#define KILN_RT_MATMUL_F64_BLOCKED "kiln_rt_matmul_f64_blocked"
void kiln_rt_matmul_f32_blocked(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                                int32_t trans_a, const float* b, int64_t ldb, int32_t trans_b,
                                float* c, int64_t ldc, int64_t block_rows, kiln_range_fn epilogue,
                                void* ctx);
void kiln_rt_matmul_f64_blocked(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                                int32_t trans_a, const double* b, int64_t ldb, int32_t trans_b,
                                double* c, int64_t ldc, int64_t block_rows, kiln_range_fn epilogue,
                                void* ctx);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_KILNABI_H */
