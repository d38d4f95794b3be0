#!/usr/bin/env bash
# Builds the graph fuzzer (tests/fuzz/FuzzGraph.cpp) with clang 19 and runs it.
#
#   tests/fuzz/run-fuzzer.sh [SECONDS]     (default 600)
#
# Environment: BUILD_DIR (default /tmp/build_fuzz), CORPUS_DIR (default $BUILD_DIR/fuzz-corpus,
# kept between runs), JOBS for ninja (default 2). The seed corpus is the example graphs plus
# tests/bad/, each prefixed with the byte that selects its format (0 text, 1 binary; 3 builds a
# graph in memory, see FuzzGraph.cpp). Crashes, hangs and leaks are written to
# $BUILD_DIR/fuzz-artifacts/; reproduce one with
#   $BUILD_DIR/tests/fuzz/kiln_fuzz_graph $BUILD_DIR/fuzz-artifacts/crash-...
# then add a file to tests/bad/ that makes the same mistake, with its expected error (for text
# and binary inputs, the crashing file itself without its first byte), and the raw input to
# tests/fuzz/regressions/.
set -euo pipefail

SECONDS_TO_RUN="${1:-600}"
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-/tmp/build_fuzz}"
CORPUS_DIR="${CORPUS_DIR:-$BUILD_DIR/fuzz-corpus}"
SEED_DIR="$BUILD_DIR/fuzz-seeds"
ARTIFACT_DIR="$BUILD_DIR/fuzz-artifacts"

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  CC=clang-19 CXX=clang++-19 cmake -G Ninja -S "$SRC_DIR" -B "$BUILD_DIR" \
    -DKILN_FUZZ=ON -DKILN_BENCHMARKS=OFF
fi
ninja -C "$BUILD_DIR" -j "${JOBS:-2}" kiln_fuzz_graph

mkdir -p "$CORPUS_DIR" "$SEED_DIR" "$ARTIFACT_DIR"
for f in "$SRC_DIR"/examples/*/*.pbtxt "$SRC_DIR"/tests/bad/*.pbtxt; do
  [[ -f "$f" ]] || continue
  { printf '\x00'; cat "$f"; } > "$SEED_DIR/text-$(basename "$f")"
done
for f in "$SRC_DIR"/tests/bad/*.pb; do
  [[ -f "$f" ]] || continue
  { printf '\x01'; cat "$f"; } > "$SEED_DIR/binary-$(basename "$f")"
done

# Inputs that once crashed the fuzzer, as it saw them (first byte included). Those of the builder
# mode depend on the op table's order, so they replay the old bug only until ops are added.
cp "$SRC_DIR"/tests/fuzz/regressions/* "$SEED_DIR"/ 2>/dev/null || true

# Seeds for the in-memory builder mode (first byte 3): random bytes are as good as any.
for k in $(seq 1 16); do
  { printf '\x03'; head -c 512 /dev/urandom; } > "$SEED_DIR/built-$k"
done

# One job; -timeout catches hangs (quadratic or worse behaviour), -rss_limit_mb huge
# allocations; leaks are reported by LeakSanitizer at exit of each input.
exec "$BUILD_DIR/tests/fuzz/kiln_fuzz_graph" "$CORPUS_DIR" "$SEED_DIR" \
  -max_total_time="$SECONDS_TO_RUN" -timeout=5 -rss_limit_mb=2048 -max_len=8192 \
  -dict="$SRC_DIR/tests/fuzz/kiln.dict" -artifact_prefix="$ARTIFACT_DIR/" -print_final_stats=1
