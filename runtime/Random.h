// Counter-based random numbers (Philox4x32-10, as in TensorFlow and JAX): every draw is a pure
// function of (seed, stream, index), so the interpreter, compiled code and any thread split
// produce the same numbers, and a checkpoint needs only the seed and the step to resume them.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace kiln::rt {

/// Philox4x32 with 10 rounds: four 32-bit words from a 128-bit counter and a 64-bit key.
struct Philox4x32 {
  static void block(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; ++r) {
      uint64_t p0 = uint64_t{0xD2511F53u} * c0;
      uint64_t p1 = uint64_t{0xCD9E8D57u} * c2;
      uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
      uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
      c0 = n0;
      c1 = static_cast<uint32_t>(p1);
      c2 = n2;
      c3 = static_cast<uint32_t>(p0);
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
  }
};

/// FNV-1a: a stable 64-bit id for a name (a node or a parameter), used as a stream.
inline uint64_t hashName(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

/// SplitMix64's finalizer, to combine a stream id with a step.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// The random numbers of one stream: draw i is a function of (seed, stream, i) alone.
class RandomStream {
 public:
  RandomStream(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  /// A stream for one op at one training step.
  static RandomStream forStep(uint64_t seed, std::string_view name, int64_t step) {
    return RandomStream(seed, mix64(hashName(name) + static_cast<uint64_t>(step)));
  }

  /// 64 random bits for index i.
  uint64_t bits(uint64_t i) const {
    uint32_t ctr[4] = {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32),
                       static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)};
    uint32_t key[2] = {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)};
    uint32_t out[4];
    Philox4x32::block(ctr, key, out);
    return (uint64_t{out[0]} << 32) | out[1];
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform(uint64_t i) const { return static_cast<double>(bits(i) >> 11) * 0x1.0p-53; }
  /// Standard normal (Box-Muller over draws 2i and 2i+1).
  double normal(uint64_t i) const {
    double u1 = 1.0 - uniform(2 * i);  // (0, 1]: log is finite
    double u2 = uniform(2 * i + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t seed_;
  uint64_t stream_;
};

}  // namespace kiln::rt
