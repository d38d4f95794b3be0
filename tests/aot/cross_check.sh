#!/bin/sh
# AOT objects for real on both targets: compiles each example model's predict object for
# aarch64-linux-gnu and for the host (x86-64), links each with tests/aot/aot_driver.cpp and a
# runtime built for that target (AArch64: runtime/AbiKernels.cpp and Npy.cpp cross-compiled with
# aarch64-linux-gnu-g++, once per run), runs the AArch64 program under qemu-aarch64, and compares
# both programs' outputs with each other and with the reference interpreter (`kiln run`, same
# inputs, same initializer seed).
#
# Tolerance: 2e-5 of max(1, |want|), as for the JIT (tests/CodegenModelsTest.cpp): the float32
# matrix products run different Eigen kernels (AVX-512 vs NEON, different blocking and FMA use)
# and the interpreter accumulates in double, so outputs differ by float32 rounding only.
#
# usage: cross_check.sh KILN NPY_COMPARE SOURCE_DIR HOST_RUNTIME_DIR WORK_DIR [MODEL...]
set -eu
KILN=$1 COMPARE=$2 SRC=$3 HOSTRT=$4 WORK=$5
shift 5
MODELS=${*:-"fashion_mlp fashion_best deep_selu deep_swish_1cycle fashion_regularized transfer_a transfer_b autoencoder autoencoder_classifier"}
TOL=2e-5
BATCH=7
TRAIN_STEPS=10
TRAIN_TOL=${TRAIN_TOL:-2e-5}
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
# In a sanitized build (KILN_SANITIZE) the host runtime library carries ASan/UBSan calls, so every
# host link needs the same flags: CTest passes them in KILN_HOST_LINK_FLAGS, and a g++ wrapper
# first on PATH adds them (also to the README's lines, which run in a child shell).
if [ -n "${KILN_HOST_LINK_FLAGS:-}" ]; then
  mkdir -p "$WORK/.hostbin"
  printf '#!/bin/sh\nexec %s "$@" %s\n' "$(command -v g++)" "$KILN_HOST_LINK_FLAGS" > "$WORK/.hostbin/g++"
  chmod +x "$WORK/.hostbin/g++"
  PATH="$WORK/.hostbin:$PATH"
fi

echo "== cross-compiling the runtime for aarch64-linux-gnu"
# What compiled code calls (the kernels and their thread pool) and what the driver uses (.npy).
objs=""
for f in AbiKernels ThreadPool Npy; do
  if [ -f "$SRC/runtime/$f.cpp" ]; then
    aarch64-linux-gnu-g++ -std=c++20 -O2 -pthread -I/usr/include/eigen3 -I"$SRC" -c "$SRC/runtime/$f.cpp" -o "$f.o"
    objs="$objs $f.o"
  fi
done
aarch64-linux-gnu-ar rcs libkiln_runtime_aarch64.a $objs

for m in $MODELS; do
  echo "== $m"
  model="$SRC/examples/$m/$m.model.pbtxt"
  "$KILN" compile "$model" --mode infer --target aarch64-linux-gnu --cpu cortex-a72 -o "a64_$m"
  "$KILN" compile "$model" --mode infer -o "x64_$m"
  aarch64-linux-gnu-g++ -std=c++20 -O1 -I"a64_$m" -I"$SRC" -DKILN_AOT_HEADER="\"$m.h\"" -DKILN_AOT_NAME="$m" \
    "$SRC/tests/aot/aot_driver.cpp" "a64_$m/$m.o" -L. -lkiln_runtime_aarch64 -pthread -o "drv_a64_$m"
  g++ -std=c++20 -O1 -I"x64_$m" -I"$SRC" -DKILN_AOT_HEADER="\"$m.h\"" -DKILN_AOT_NAME="$m" \
    "$SRC/tests/aot/aot_driver.cpp" "x64_$m/$m.o" -L"$HOSTRT" -lkiln_runtime -lz -pthread -o "drv_x64_$m"
  mkdir -p "run_a64_$m" "run_x64_$m" "interp_$m"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "./drv_a64_$m" "run_a64_$m" $BATCH
  "./drv_x64_$m" "run_x64_$m" $BATCH
  # Both programs generate the same inputs; the interpreter reads the host program's.
  cmp "run_a64_$m/in_x.npy" "run_x64_$m/in_x.npy"
  "$KILN" run "$model" --input "x=run_x64_$m/in_x.npy" --output-dir "interp_$m" > /dev/null
  for out in "run_x64_$m"/out_*.npy; do
    f=$(basename "$out" .npy)
    f=${f#out_}
    "$COMPARE" $TOL "run_a64_$m/out_$f.npy" "interp_$m/$f.npy"
    "$COMPARE" $TOL "run_x64_$m/out_$f.npy" "interp_$m/$f.npy"
    "$COMPARE" $TOL "run_a64_$m/out_$f.npy" "run_x64_$m/out_$f.npy"
  done
done
# --cpu and -O change the code, not the results: fashion_mlp for a baseline x86-64-v2 at O2.
echo "== fashion_mlp for x86-64-v2 at O2"
m=fashion_mlp
"$KILN" compile "$SRC/examples/$m/$m.model.pbtxt" --mode infer --cpu x86-64-v2 -O 2 -o "v2_$m"
g++ -std=c++20 -O1 -I"v2_$m" -I"$SRC" -DKILN_AOT_HEADER="\"$m.h\"" -DKILN_AOT_NAME="$m" \
  "$SRC/tests/aot/aot_driver.cpp" "v2_$m/$m.o" -L"$HOSTRT" -lkiln_runtime -lz -pthread -o "drv_v2_$m"
mkdir -p "run_v2_$m"
"./drv_v2_$m" "run_v2_$m" $BATCH
"$COMPARE" $TOL "run_v2_$m/out_logits.npy" "interp_$m/logits.npy"

# Training steps through the generated wrapper on both architectures (fashion_mlp: SGD with batch
# norm; fashion_regularized: dropout, whose masks come from (seed, node, step)). tests/AotTrainTest
# checks the host object's steps against the interpreter; here AArch64 must follow the host.
for m in fashion_mlp fashion_regularized; do
  echo "== $m training steps"
  model="$SRC/examples/$m/$m.model.pbtxt"
  "$KILN" compile "$model" --mode train --target aarch64-linux-gnu --cpu cortex-a72 -o "a64_train_$m"
  "$KILN" compile "$model" --mode train -o "x64_train_$m"
  aarch64-linux-gnu-g++ -std=c++20 -O1 -I"a64_train_$m" -I"$SRC" -DKILN_AOT_HEADER="\"$m.h\"" -DKILN_AOT_NAME="$m" \
    "$SRC/tests/aot/train_driver.cpp" "a64_train_$m/$m.o" -L. -lkiln_runtime_aarch64 -pthread -o "trd_a64_$m"
  g++ -std=c++20 -O1 -I"x64_train_$m" -I"$SRC" -DKILN_AOT_HEADER="\"$m.h\"" -DKILN_AOT_NAME="$m" \
    "$SRC/tests/aot/train_driver.cpp" "x64_train_$m/$m.o" -L"$HOSTRT" -lkiln_runtime -lz -pthread -o "trd_x64_$m"
  mkdir -p "train_a64_$m" "train_x64_$m"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "./trd_a64_$m" "train_a64_$m" 16 $TRAIN_STEPS
  "./trd_x64_$m" "train_x64_$m" 16 $TRAIN_STEPS
  "$COMPARE" $TRAIN_TOL "train_a64_$m/train_losses.npy" "train_x64_$m/train_losses.npy"
  "$COMPARE" $TRAIN_TOL "train_a64_$m/eval_after.npy" "train_x64_$m/eval_after.npy"
done
echo "all models match on aarch64 (qemu), x86-64 and the interpreter"
