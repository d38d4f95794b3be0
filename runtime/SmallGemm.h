// A register-tiled product for matrices whose B fits in L2, without packing either operand:
// C[m,n] = op(A)[m,k] B[k,n], where op(A) is A or A^T.
//
// Included by AbiKernels.cpp alone: it needs that file's native instruction set and its renamed
// Eigen (whose packet types and intrinsics wrappers it uses for portability: AVX-512, AVX2, NEON).
//
// Why: Eigen's GEMM packs both operands on every call, zero-fills C first, and its 48x4 kernel
// leaves a 4-column tail at n = 100: in deep_selu's training step (20 layers of [256,100] x
// [100,100], one thread) packing and the zero-fill alone took 17% of the step (perf). Here a
// tile of 6 rows x 4 packets of C (4 x 3 with 16 registers) is held in registers over a block of
// k; B's rows are read in place (whole packets, the ragged last one masked where the ISA allows)
// and A's elements are broadcast straight from memory, so a transposed A costs nothing; C is
// written once. A transposed B would need a copy: those products stay with Eigen.
//
// Every element of C is one fused multiply-add chain over k = 0, 1, ..., k-1 starting from zero,
// whatever tile, packet width or column offset computes it (the scalar tail uses std::fma), so
// the result is bit-identical for every split of the rows or columns across threads and every
// row block of the blocked product (SmallGemmTest checks every tail and block against that
// chain bit for bit; ThreadPoolTest and BlockedMatmulTest, the splits).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

// Packet types carry vector attributes that template arguments drop (harmlessly: Eigen's own
// headers silence the same warning).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace kiln_small_gemm {

// Only where the packets' multiply-add is fused (pmadd is a separate multiply and add on x86
// without FMA), so that every packet width and the scalar tail round alike.
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
constexpr bool kAvailable = true;
#else
constexpr bool kAvailable = false;
#endif

/// B's elements (k x n) up to which the unpacked product is used: B is read in k blocks that stay
/// in L1 while every row tile runs over them, and the whole of it stays in L2 for the next panel.
/// Measured with BM_Matmul (1 thread, AVX-512, GFLOP/s, Eigen -> this kernel): deep_selu's
/// [256,100]x[100,100] 151 -> 177, its weight gradient [100,256]^T x [256,100] 148 -> 182,
/// fashion_mlp's [200,784]x[784,300] 170 -> 191 and its [784,200]^T x [200,300] 173 -> 180.
/// Beyond L2, Eigen's packed GEMM, which blocks for every cache level, is the safer choice.
constexpr int64_t kMaxBElements = int64_t(1) << 18;

template <class T>
struct Operands {
  int64_t k;
  const T* a;
  int64_t aRow, aK;  // element (i, kk) of op(A) is a[i * aRow + kk * aK]
  const T* b;
  int64_t ldb;
  T* c;
  int64_t ldc;
};

namespace ei = Eigen::internal;

/// Register budget: 32 vector registers (AVX-512, AArch64) hold 6 x 4 accumulators, 4 packets of
/// B and a broadcast; 16 (AVX2) hold 4 x 3.
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr int kRows = 6, kMaxPackets = 4;
#else
constexpr int kRows = 4, kMaxPackets = 3;
#endif
/// Bytes of B per k block: a panel's rows of B for one block stay in L1 while every row tile
/// of C runs over them (L1 is 32-48 KB on the CPUs this targets).
constexpr int64_t kBlockBytes = int64_t(24) << 10;

template <class P>
inline P fmaP(const P& a, const P& b, const P& c) {
  return ei::pmadd(a, b, c);
}
inline float fmaP(float a, float b, float c) { return std::fma(a, b, c); }
inline double fmaP(double a, double b, double c) { return std::fma(a, b, c); }

template <class P, class T>
constexpr int lanes() {
  if constexpr (std::is_same_v<P, T>) return 1;
  else return ei::unpacket_traits<P>::size;
}

/// Whether Eigen has masked loads and stores for P (float on AVX-512 and AVX): then a ragged
/// last packet is one masked packet instead of narrower packets and single columns.
template <class P, class T>
constexpr bool maskable() {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<P, ei::Packet16f>) return true;
#endif
#if defined(__AVX__)
  if constexpr (std::is_same_v<P, ei::Packet8f>) return true;
#endif
  return false;
}

/// Packet v of a row of B or C: whole, or (the last one, when Masked) only the lanes in mask.
template <class P, class T, bool Masked>
inline P loadP(const T* p, bool last, uint32_t mask) {
  if constexpr (std::is_same_v<P, T>) return *p;
  else if constexpr (Masked) {
    using M = typename ei::unpacket_traits<P>::mask_t;
    return last ? ei::ploadu<P>(p, static_cast<M>(mask)) : ei::ploadu<P>(p);
  } else {
    return ei::ploadu<P>(p);
  }
}
template <class P, class T, bool Masked>
inline void storeP(T* p, const P& x, bool last, uint32_t mask) {
  if constexpr (std::is_same_v<P, T>) *p = x;
  else if constexpr (Masked) {
    using M = typename ei::unpacket_traits<P>::mask_t;
    if (last) ei::pstoreu<T>(p, x, static_cast<M>(mask));
    else ei::pstoreu<T>(p, x);
  } else {
    ei::pstoreu<T>(p, x);
  }
}
template <class P, class T>
inline P setP(T x) {
  if constexpr (std::is_same_v<P, T>) return x;
  else return ei::pset1<P>(x);
}

/// Rows [i0, i0 + R) and V packets of columns from j0, k in [k0, k1): accumulators start at zero
/// (first block) or at C's partial sums, and go back to C.
template <class T, class P, int R, int V, bool Masked>
inline void tile(const Operands<T>& o, int64_t i0, int64_t j0, int64_t k0, int64_t k1, bool first,
                 uint32_t mask) {
  constexpr int L = lanes<P, T>();
  // Fully unrolled (GCC would otherwise keep acc in memory and store it on every k).
  P acc[R][V];
  T* c = o.c + i0 * o.ldc + j0;
  if (first) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = setP<P>(T(0));
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = loadP<P, T, Masked>(c + r * o.ldc + v * L, v == V - 1, mask);
  }
  const T* a = o.a + i0 * o.aRow + k0 * o.aK;
  const T* b = o.b + k0 * o.ldb + j0;
  for (int64_t kk = k0; kk < k1; ++kk) {
    P bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) bv[v] = loadP<P, T, Masked>(b + v * L, v == V - 1, mask);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      P av = setP<P>(a[r * o.aRow]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = fmaP(av, bv[v], acc[r][v]);
    }
    a += o.aK;
    b += o.ldb;
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) storeP<P, T, Masked>(c + r * o.ldc + v * L, acc[r][v], v == V - 1, mask);
}

/// Every row of one panel (V packets from column j0) for one k block: tiles of kRows rows, then
/// one tile of the remaining rows.
template <class T, class P, int V, bool Masked>
void panel(const Operands<T>& o, int64_t m, int64_t j0, int64_t k0, int64_t k1, bool first,
           uint32_t mask) {
  int64_t i = 0;
  for (; i + kRows <= m; i += kRows) tile<T, P, kRows, V, Masked>(o, i, j0, k0, k1, first, mask);
  const int64_t left = m - i;
  [&]<int... Rs>(std::integer_sequence<int, Rs...>) {
    ((left == Rs + 1 ? (tile<T, P, Rs + 1, V, Masked>(o, i, j0, k0, k1, first, mask), 0) : 0), ...);
  }(std::make_integer_sequence<int, kRows - 1>{});
}

/// A panel of `packets` (1 ... kMaxPackets) packets of P from column j0, over all of k in blocks.
template <class T, class P, bool Masked>
void panelAllK(const Operands<T>& o, int64_t m, int64_t j0, int packets, uint32_t mask) {
  constexpr int L = lanes<P, T>();
  const int64_t kc = std::max<int64_t>(8, kBlockBytes / (int64_t(kMaxPackets) * L * int64_t(sizeof(T))));
  for (int64_t k0 = 0; k0 < o.k; k0 += kc) {
    const int64_t k1 = std::min(o.k, k0 + kc);
    [&]<int... Vs>(std::integer_sequence<int, Vs...>) {
      ((packets == Vs + 1 ? (panel<T, P, Vs + 1, Masked>(o, m, j0, k0, k1, k0 == 0, mask), 0) : 0), ...);
    }(std::make_integer_sequence<int, kMaxPackets>{});
  }
}

/// Columns [j0, n) with packets of P: `count` packets split into panels of at most kMaxPackets,
/// as even as possible (100 columns of 16 lanes: 4 + 3 packets, not 4 + 2 + a lone one).
template <class T, class P, bool Masked>
void panels(const Operands<T>& o, int64_t m, int64_t n, int64_t j0, int64_t count) {
  constexpr int L = lanes<P, T>();
  const int64_t numPanels = (count + kMaxPackets - 1) / kMaxPackets;
  for (int64_t p = 0; p < numPanels; ++p) {
    const int packets = static_cast<int>(count / numPanels + (p < count % numPanels ? 1 : 0));
    const int64_t end = std::min(n, j0 + int64_t(packets) * L);
    // The lanes of the last packet that fall inside the row (all of them but at the very end).
    const int64_t inLast = end - (j0 + int64_t(packets - 1) * L);
    const uint32_t mask = inLast >= 32 ? ~0u : (uint32_t(1) << inLast) - 1;
    panelAllK<T, P, Masked>(o, m, j0, packets, mask);
    j0 = end;
  }
}

/// Columns [j0, n): whole packets of P (and a masked last one where P allows), the rest with
/// half-width packets, down to single columns.
template <class T, class P>
void columns(const Operands<T>& o, int64_t m, int64_t n, int64_t j0) {
  constexpr int L = lanes<P, T>();
  if constexpr (maskable<P, T>()) {
    panels<T, P, true>(o, m, n, j0, (n - j0 + L - 1) / L);
    return;
  }
  const int64_t whole = (n - j0) / L;
  if (whole > 0) panels<T, P, false>(o, m, n, j0, whole);
  j0 += whole * L;
  if (j0 >= n) return;
  if constexpr (L > 1) {
    using Half = typename ei::unpacket_traits<P>::half;
    if constexpr (!std::is_same_v<Half, P>) columns<T, Half>(o, m, n, j0);
    else columns<T, T>(o, m, n, j0);
  }
}

/// C[m,n] = op(A) B (alpha 1, beta 0: C is written, never read before).
template <class T>
void product(const Operands<T>& o, int64_t m, int64_t n) {
  columns<T, typename ei::packet_traits<T>::type>(o, m, n, 0);
}

}  // namespace kiln_small_gemm

#pragma GCC diagnostic pop
