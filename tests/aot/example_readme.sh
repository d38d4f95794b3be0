#!/bin/sh
# Runs examples/aot_fashion/README.md's three command lines verbatim, in a directory laid out
# like the repository root (examples/, runtime/ and build/ linked in), after training a
# fashion_mlp.safetensors on a subset (the README's input; 1 epoch of 5,000 images keeps it
# CI-sized). The accuracy ./classify prints must be the test accuracy `kiln evaluate` reports for
# the same checkpoint, to within 3 images of 10,000: the compiled code rounds float32 differently
# from the interpreter, which can flip the argmax of a near tie.
#
# usage: example_readme.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -eu
SRC=$1 BUILD=$2 WORK=$3
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
ln -s "$SRC/examples" examples
ln -s "$SRC/runtime" runtime
ln -s "$BUILD" build
./build/compiler/kiln train examples/fashion_mlp/fashion_mlp.model.pbtxt --train-limit 5000 --epochs 1 \
  --save fashion_mlp.safetensors > train.log
want=$(./build/compiler/kiln evaluate examples/fashion_mlp/fashion_mlp.model.pbtxt --checkpoint fashion_mlp.safetensors |
  sed -n 's/^test: .*accuracy \([0-9.]*\).*/\1/p')
sed -n '/^```sh$/,/^```$/p' "$SRC/examples/aot_fashion/README.md" | sed '1d;$d' > steps.sh
test "$(wc -l < steps.sh)" -eq 3
sh -ex steps.sh | tee classify.log
got=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' classify.log)
echo "classify: $got, kiln evaluate: $want"
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && w != "" && d <= 0.0003) }'

# The same with --weights-external: the wrapper reads out_ext/fashion_mlp.safetensors at run time
# and must classify exactly as the embedded build (same code, same weights).
./build/compiler/kiln compile examples/fashion_mlp/fashion_mlp.model.pbtxt --mode infer --weights fashion_mlp.safetensors \
  --weights-external -o out_ext/
g++ -std=c++20 -O2 -I out_ext -I . examples/aot_fashion/main.cpp out_ext/fashion_mlp.o -Lbuild/runtime -lkiln_runtime -lz \
  -pthread -o classify_ext
ext=$(./classify_ext /usr/share/datasets/fashion-mnist out_ext/fashion_mlp.safetensors | sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p')
echo "classify with external weights: $ext"
test "$ext" = "$got"
# A weights file that is not there is the wrapper's clear error, not a crash.
if ./classify_ext /usr/share/datasets/fashion-mnist missing.safetensors 2> missing.log; then exit 1; fi
grep -q "missing.safetensors" missing.log
echo "aot example ok"
