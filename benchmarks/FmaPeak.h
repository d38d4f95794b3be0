// The FMA-throughput loops behind the FP32 peak benchmark.
#pragma once

#include <cstdint>

namespace kiln::bench {

/// The widest FMA the CPU has: "avx512", "avx2" or "scalar".
const char* fmaIsa();
/// Runs `rounds` rounds of independent single-precision FMAs with the widest vector FMA the CPU
/// has and returns a value that depends on all of them (so none is optimized away). Sets
/// *flops to the floating-point operations done (2 per lane per FMA).
float fmaLoop(int64_t rounds, double* flops);

}  // namespace kiln::bench
