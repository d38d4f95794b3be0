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
#include <tuple>

#define Eigen KilnNativeEigen
#include <Eigen/Core>

#include "runtime/AbiKernels.h"
#include "runtime/KilnABI.h"
#include "runtime/SmallGemm.h"
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
  /// Computed by kiln_small_gemm::product (decided once for the whole product, so that every
  /// chunk of a split one sums the same way).
  bool small = false;
};

/// Whether the product C[m,n] = op(A) op(B) takes kiln_small_gemm's unpacked kernel: B stored
/// [k,n] (not transposed) and small enough to stay in cache, more than one row (one row streams
/// B through Eigen's matrix-vector kernel).
template <class T>
bool smallProduct(const Product<T>& p) {
  return kiln_small_gemm::kAvailable && !p.tb && p.alpha == T(1) && p.beta == T(0) && p.m >= 2 &&
         p.n > 0 && p.k > 0 && p.n * p.k <= kiln_small_gemm::kMaxBElements;
}

template <class T>
void smallSerial(const Product<T>& p) {
  kiln_small_gemm::Operands<T> o{p.k, p.a, p.ta ? 1 : p.lda, p.ta ? p.lda : 1,
                                 p.b, p.ldb, p.c, p.ldc};
  kiln_small_gemm::product(o, p.m, p.n);
}

template <class T>
void matmulSerial(const Product<T>& p) {
  if (p.small && p.m > 0 && p.n > 0) return smallSerial(p);
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
  auto [m, n, k, a, lda, ta, b, ldb, tb, c, ldc, alpha, beta, small] = p;
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
void matmul(Product<T> p) {
  using kiln::rt::MatmulSplit;
  p.small = smallProduct(p);
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

/// Scratch memory of the blocked product, by role: packed B, shared by every chunk of one call,
/// and each chunk's packed panel of A. Same rules as WorkspaceBlocking's: chunk i of a parallel
/// loop uses slot i whichever thread runs it; outside a loop the calling thread's own; pool
/// workers never touch a thread_local (they only run chunks).
template <class T>
T* blockedScratch(int role, GemmIndex elements) {
  struct Buffer {
    T* data = nullptr;
    GemmIndex size = 0;
    ~Buffer() { std::free(data); }
  };
  static Buffer chunkBuffers[kiln::rt::kMaxThreads][2];
  int chunk = kiln::rt::currentChunk();
  Buffer* buf;
  if (chunk >= 0) {
    buf = &chunkBuffers[chunk][role];
  } else {
    thread_local Buffer own[2];
    buf = &own[role];
  }
  if (buf->size < elements) {
    std::free(buf->data);
    size_t bytes = (static_cast<size_t>(elements) * sizeof(T) + 63) / 64 * 64;
    buf->data = static_cast<T*>(std::aligned_alloc(64, bytes));
    buf->size = elements;
  }
  return buf->data;
}

/// C[m,n] = op(A) op(B) row block by row block, calling the epilogue on each block as soon as it
/// is final. GotoBLAS's loops on Eigen's packing routines and register kernel, in Eigen's
/// transposed view of a row-major C (C^T = op(B)^T op(A)^T): Eigen's lhs is our B (its rows are
/// our columns), its rhs our A (its columns are our rows). B is packed once, in kc x mc panels
/// (Eigen's own blocking for these sizes); each block of rows then packs its kc x rows panels of
/// A and runs the kernel over all of B.
///
/// Bit-identical for every block size and thread count: kc and mc depend on (m, n, k) alone, so
/// each element of C sums the same k panels in the same order, each panel in one kernel call on
/// the same packed B; and since blocks are multiples of 8 rows, every row falls in the same
/// position of the kernel's nr-column groups (Eigen sums a lone column differently from a group
/// of 4).
template <class T, int BOrder, int AOrder>
class BlockedGemm {
 public:
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using BMapper = Eigen::internal::const_blas_data_mapper<T, GemmIndex, BOrder>;
  using AMapper = Eigen::internal::const_blas_data_mapper<T, GemmIndex, AOrder>;
  using CMapper =
      Eigen::internal::blas_data_mapper<T, GemmIndex, Eigen::ColMajor, Eigen::Unaligned, 1>;

  BlockedGemm(GemmIndex m, GemmIndex n, GemmIndex k, const T* a, GemmIndex lda, const T* b,
              GemmIndex ldb, T* c, GemmIndex ldc)
      : m_(m), n_(n), k_(k), a_(a, lda), b_(b, ldb), c_(c), ldc_(ldc) {
    GemmIndex kc = k, mc = n, nc = m;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, GemmIndex>(kc, mc, nc, 1);
    kc_ = kc;
    mc_ = std::min(mc, n);
    kPanels_ = (k + kc_ - 1) / kc_;
    nPanels_ = (n + mc_ - 1) / mc_;
  }

  /// Elements of packed B, each panel padded to 64 bytes (Eigen's kernel loads it aligned).
  GemmIndex packedBSize() const { return kPanels_ * nPanels_ * panelStride(); }
  GemmIndex kPanels() const { return kPanels_; }

  /// Packs B's k panels [p0, p1) into packed (packedBSize() elements, 64-byte aligned).
  void packB(T* packed, GemmIndex p0, GemmIndex p1) const {
    Eigen::internal::gemm_pack_lhs<T, GemmIndex, BMapper, Traits::mr, Traits::LhsProgress,
                                   typename Traits::LhsPacket4Packing, BOrder>
        pack;
    for (GemmIndex p = p0; p < p1; ++p)
      for (GemmIndex q = 0; q < nPanels_; ++q)
        pack(panel(packed, p, q), b_.getSubMapper(q * mc_, p * kc_), kDepth(p), nWidth(q));
  }

  /// Rows [r0, r0 + rows) of C from packed B; scratch holds kc * rows elements. With packB set,
  /// packs each panel of B just before its first use (a serial product's first block: the panel
  /// is then still in cache for the kernel, as in Eigen's own loop).
  void rowBlock(T* packed, T* scratch, GemmIndex r0, GemmIndex rows, bool packB) const {
    for (GemmIndex i = r0; i < r0 + rows; ++i) std::fill(c_ + i * ldc_, c_ + i * ldc_ + n_, T(0));
    Eigen::internal::gemm_pack_rhs<T, GemmIndex, AMapper, Traits::nr, AOrder> packA;
    Eigen::internal::gebp_kernel<T, T, GemmIndex, CMapper, Traits::mr, Traits::nr, false, false>
        gebp;
    CMapper c(c_, ldc_);
    for (GemmIndex p = 0; p < kPanels_; ++p) {
      if (packB) this->packB(packed, p, p + 1);
      packA(scratch, a_.getSubMapper(p * kc_, r0), kDepth(p), rows);
      for (GemmIndex q = 0; q < nPanels_; ++q)
        gebp(c.getSubMapper(q * mc_, r0), panel(packed, p, q), scratch, nWidth(q), kDepth(p), rows,
             T(1));
    }
  }

  GemmIndex kc() const { return kc_; }

 private:
  GemmIndex panelStride() const { return (kc_ * mc_ + 15) / 16 * 16; }
  const T* panel(const T* packed, GemmIndex p, GemmIndex q) const {
    return packed + (p * nPanels_ + q) * panelStride();
  }
  T* panel(T* packed, GemmIndex p, GemmIndex q) const {
    return packed + (p * nPanels_ + q) * panelStride();
  }
  GemmIndex kDepth(GemmIndex p) const { return std::min(kc_, k_ - p * kc_); }
  GemmIndex nWidth(GemmIndex q) const { return std::min(mc_, n_ - q * mc_); }

  GemmIndex m_, n_, k_;
  AMapper a_;
  BMapper b_;
  T* c_;
  GemmIndex ldc_;
  GemmIndex kc_ = 0, mc_ = 0, kPanels_ = 0, nPanels_ = 0;
};

/// Products with fewer rows than this run as one product and one epilogue call: blocks of rows
/// would leave nothing to share between threads, and the plain kernel splits such a product over
/// columns instead (and at one row streams B without packing it).
constexpr int64_t kMinBlockedRows = 16;
/// Bytes of C per row block of a blocked product that takes the small kernel (nothing to pack, so
/// small blocks cost nothing and the epilogue reads C from L1).
constexpr int64_t kSmallEpilogueBlockBytes = int64_t(32) << 10;

template <class T, int BOrder, int AOrder>
void matmulBlockedWith(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
                       int64_t ldb, T* c, int64_t ldc, kiln_range_fn epilogue, void* ctx,
                       int64_t blockRows, int64_t minChunkRows) {
  const BlockedGemm<T, BOrder, AOrder> gemm(m, n, k, a, lda, b, ldb, c, ldc);
  T* packed = blockedScratch<T>(/*role=*/0, gemm.packedBSize());
  // Each chunk of rows is a whole number of blocks, so block boundaries do not depend on the
  // thread count.
  const int64_t grain = (minChunkRows + blockRows - 1) / blockRows * blockRows;
  auto rows = [&](int64_t r0, int64_t r1, bool packFirst) {
    T* scratch = blockedScratch<T>(/*role=*/1, gemm.kc() * blockRows);
    for (int64_t rb = r0; rb < r1; rb += blockRows) {
      int64_t re = std::min(rb + blockRows, r1);
      gemm.rowBlock(packed, scratch, rb, re - rb, packFirst && rb == r0);
      if (epilogue) epilogue(rb, re, ctx);
    }
  };
  if (kiln::rt::Partition::of(m, grain, kiln::rt::numThreads()).chunks == 1) {
    // One thread. The product in one block is Eigen's own loop, which packs B one kc x mc panel
    // at a time into the same buffer: packing all of B into distinct panels costs 8% more at
    // fashion_mlp's batch 64 (the packed copy is read once, and written out of L2). Same sums in
    // the same order, so the same bits (BlockedMatmulTest).
    if (m <= blockRows) {
      matmul<T>({m, n, k, a, lda, AOrder == Eigen::RowMajor, b, ldb, BOrder == Eigen::RowMajor, c,
                 ldc, T(1), T(0)});
      if (epilogue) epilogue(0, m, ctx);
      return;
    }
    // Else B is packed panel by panel as the first block needs it.
    rows(0, m, /*packFirst=*/true);
    return;
  }
  // Several: every thread packs panels of B first, then the blocks share them.
  auto pack = [&](int64_t p0, int64_t p1) { gemm.packB(packed, p0, p1); };
  kiln::rt::parallelFor(gemm.kPanels(), 1, pack);
  kiln::rt::parallelFor(m, grain, [&](int64_t r0, int64_t r1) { rows(r0, r1, false); });
}

template <class T>
void runBlocked(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, bool ta, const T* b,
                int64_t ldb, bool tb, T* c, int64_t ldc, kiln_range_fn epilogue, void* ctx,
                int64_t blockRows) {
  if (m <= 0) return;
  if (m < kMinBlockedRows || n == 0 || k == 0) {
    matmul<T>({m, n, k, a, lda, ta, b, ldb, tb, c, ldc, T(1), T(0)});
    if (epilogue) epilogue(0, m, ctx);
    return;
  }
  if (smallProduct<T>({m, n, k, a, lda, ta, b, ldb, tb, c, ldc, T(1), T(0)})) {
    // Nothing is packed, so blocks cost nothing: blocks of C small enough to stay in L1 for
    // the epilogue, in chunks of rows on the pool. Every element is the same fma chain for any
    // blocking, so the runtime's choice splits the rows as kiln_rt_matmul does (even chunks:
    // whole blocks per chunk made fashion_mlp's fused prediction 0.84x of the unfused one at
    // batch 64 on 2 threads, 48 + 16 rows); explicit block sizes (tests) keep whole blocks.
    int64_t grain;
    if (blockRows <= 0) {
      // Whole multiples of 24 rows: of 8 (the ABI's rounding) and of the 6- or 4-row tiles.
      blockRows = std::max<int64_t>(24, kSmallEpilogueBlockBytes / (n * int64_t(sizeof(T))) / 24 * 24);
      kiln::rt::MatmulSplit split = kiln::rt::planMatmulSplit(m, n, k, kiln::rt::numThreads(), sizeof(T));
      grain = split.dim == kiln::rt::MatmulSplit::Dim::Rows ? split.grain : m;
    } else {
      int64_t minRows = std::max<int64_t>(1, (int64_t(1) << 17) / (n * k));
      grain = (minRows + blockRows - 1) / blockRows * blockRows;
    }
    kiln::rt::parallelFor(m, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t rb = r0; rb < r1; rb += blockRows) {
        int64_t re = std::min(rb + blockRows, r1);
        Product<T> q{re - rb, n, k, ta ? a + rb : a + rb * lda, lda, ta, b, ldb, tb,
                     c + rb * ldc, ldc, T(1), T(0), /*small=*/true};
        smallSerial(q);
        if (epilogue) epilogue(rb, re, ctx);
      }
    });
    return;
  }
  if (blockRows <= 0 && kiln::rt::numThreads() > 1) {
    // Several threads, the runtime's choice: the product split as kiln_rt_matmul splits it (each
    // thread packs the B it reads), then the epilogue over chunks of rows on the pool. Measured
    // on fashion_mlp's prediction at 2 threads (kiln bench, quiet machine), the blocked product
    // with B packed once and shared made the fused variant slower than the unfused one: 0.67x
    // at batch 64 (219 vs 146 us), 0.91x at batch 256. Same products, so the same bits; explicit
    // block sizes (tests) still run the blocked path below.
    matmul<T>({m, n, k, a, lda, ta, b, ldb, tb, c, ldc, T(1), T(0)});
    if (epilogue) {
      // Chunks of at least 16K elements, as codegen's parallel elementwise loops.
      const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / n);
      kiln::rt::parallelFor(m, grain, [&](int64_t r0, int64_t r1) { epilogue(r0, r1, ctx); });
    }
    return;
  }
  if (blockRows <= 0) {
    blockRows = kiln::rt::defaultEpilogueBlockRows(m, n, k, sizeof(T));
    // With several threads, a block count that is a multiple of the threads (each chunk is whole
    // blocks): 256 rows in blocks of 104 would split 104 + 152.
    int64_t threads = kiln::rt::numThreads();
    if (threads > 1) {
      int64_t blocks = (m + blockRows - 1) / blockRows;
      blocks = (blocks + threads - 1) / threads * threads;
      blockRows = std::max<int64_t>(8, ((m + blocks - 1) / blocks + 7) / 8 * 8);
    }
  }
  // Rows per chunk of work handed to another thread (kiln::rt::planMatmulSplit's threshold).
  int64_t minChunkRows = std::max<int64_t>(1, (int64_t(1) << 17) / (n * k));
  // Eigen's lhs is B^T [n,k]: column-major when B is stored [k,n]. Its rhs is A^T [k,m]:
  // column-major when A is stored [m,k].
  constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
  auto args =
      std::make_tuple(m, n, k, a, lda, b, ldb, c, ldc, epilogue, ctx, blockRows, minChunkRows);
  if (!tb && !ta)
    std::apply(matmulBlockedWith<T, Cm, Cm>, args);
  else if (!tb && ta)
    std::apply(matmulBlockedWith<T, Cm, R>, args);
  else if (tb && !ta)
    std::apply(matmulBlockedWith<T, R, Cm>, args);
  else
    std::apply(matmulBlockedWith<T, R, R>, args);
}

}  // namespace

namespace kiln::rt {

namespace {
/// The least work (multiply-adds) worth handing to another thread: waking a worker and waiting
/// for it costs a few microseconds when it is asleep, on the order of this many multiply-adds.
constexpr int64_t kMinChunkWork = int64_t(1) << 17;
/// Bytes of C per row block of kiln_rt_matmul_*_blocked. Measured on fashion_mlp's prediction at
/// batch 1024, one thread (a compiled object, CPU time): blocks of 8 KB 3735 us, 32 KB 3677 us,
/// 128 KB 3640 us, 256 rows 3665 us. Small blocks cost more than they save: each runs Eigen's
/// kernel over all of packed B for only a few columns of its register tile.
constexpr int64_t kEpilogueBlockBytes = int64_t(128) << 10;

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

bool unpackedMatmul(int64_t m, int64_t n, int64_t k, bool ta, bool tb, int elementBytes) {
  if (elementBytes == 4) return smallProduct<float>({m, n, k, nullptr, 0, ta, nullptr, 0, tb, nullptr, 0, 1.0f, 0.0f});
  return smallProduct<double>({m, n, k, nullptr, 0, ta, nullptr, 0, tb, nullptr, 0, 1.0, 0.0});
}

int64_t defaultEpilogueBlockRows(int64_t m, int64_t n, int64_t k, int elementBytes) {
  (void)m;
  (void)k;
  // Rows whose block of C stays in L1/L2 between the kernel's last write and the epilogue's read.
  int64_t rows = kEpilogueBlockBytes / std::max<int64_t>(1, n * elementBytes);
  return std::clamp<int64_t>(rows / 8 * 8, 8, 256);
}

template <class T>
void matmulBlocked(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, bool ta, const T* b,
                   int64_t ldb, bool tb, T* c, int64_t ldc, kiln_range_fn epilogue, void* ctx,
                   int64_t blockRows) {
  runBlocked<T>(m, n, k, a, lda, ta, b, ldb, tb, c, ldc, epilogue, ctx,
                blockRows > 0 ? roundUp(blockRows, 8) : 0);
}
template void matmulBlocked<float>(int64_t, int64_t, int64_t, const float*, int64_t, bool,
                                   const float*, int64_t, bool, float*, int64_t, kiln_range_fn,
                                   void*, int64_t);
template void matmulBlocked<double>(int64_t, int64_t, int64_t, const double*, int64_t, bool,
                                    const double*, int64_t, bool, double*, int64_t, kiln_range_fn,
                                    void*, int64_t);

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

void kiln_rt_matmul_f32_blocked(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                                int32_t trans_a, const float* b, int64_t ldb, int32_t trans_b,
                                float* c, int64_t ldc, int64_t block_rows, kiln_range_fn epilogue,
                                void* ctx) {
  kiln::rt::matmulBlocked<float>(m, n, k, a, lda, trans_a != 0, b, ldb, trans_b != 0, c, ldc,
                                 epilogue, ctx, block_rows);
}

void kiln_rt_matmul_f64_blocked(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                                int32_t trans_a, const double* b, int64_t ldb, int32_t trans_b,
                                double* c, int64_t ldc, int64_t block_rows, kiln_range_fn epilogue,
                                void* ctx) {
  kiln::rt::matmulBlocked<double>(m, n, k, a, lda, trans_a != 0, b, ldb, trans_b != 0, c, ldc,
                                  epilogue, ctx, block_rows);
}

}  // extern "C"
