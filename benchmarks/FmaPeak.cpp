// FP32 peak per core: chains of independent vector FMAs, enough of them to cover the FMA
// latency (4 cycles) on every FMA port (2 on this Xeon), so the loop is bound by throughput.
#include "benchmarks/FmaPeak.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::bench {

namespace {

// 12 accumulators: latency 4 x 2 ports = 8 chains in flight, with room to spare, and under the
// 16 (AVX2) or 32 (AVX-512) vector registers so nothing spills.
constexpr int kChains = 12;

#if defined(__x86_64__)
// target attributes instead of per-file -m flags: only these functions use the wider ISA, and
// fmaIsa() picks one the CPU runs.
__attribute__((target("avx512f"))) float loopAvx512(int64_t rounds) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  // x * a + b with a just under 1 keeps every value bounded (no overflow, no denormals).
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t r = 0; r < rounds; ++r)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  // A store, not _mm512_reduce_add_ps, whose GCC 12 header warns (-Wuninitialized).
  float lanes[16];
  _mm512_storeu_ps(lanes, sum);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}

__attribute__((target("avx2,fma"))) float loopAvx2(int64_t rounds) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t r = 0; r < rounds; ++r)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}
#endif

float loopScalar(int64_t rounds) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = float(i) * 1e-3f;
  for (int64_t r = 0; r < rounds; ++r)
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * 0.999999f + 1e-6f;
  float s = 0;
  for (float x : acc) s += x;
  return s;
}

}  // namespace

namespace {
/// Vector lanes of the widest FMA this CPU runs (1: scalar code).
int fmaLanes() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return 16;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
#endif
  return 1;
}
}  // namespace

const char* fmaIsa() { return fmaLanes() == 16 ? "avx512" : fmaLanes() == 8 ? "avx2" : "scalar"; }

float fmaLoop(int64_t rounds, double* flops) {
  int lanes = fmaLanes();
  *flops = 2.0 * lanes * kChains * double(rounds);
#if defined(__x86_64__)
  if (lanes == 16) return loopAvx512(rounds);
  if (lanes == 8) return loopAvx2(rounds);
#endif
  return loopScalar(rounds);
}

}  // namespace kiln::bench
