#!/bin/sh
# kiln build end to end: builds fashion_mlp's training program, checks it needs no LLVM, trains it
# on 2,000 images for 2 epochs from a copy outside the build tree with a bare environment, and
# checks it learned (test accuracy at least 0.60; kiln train reaches 0.618 on this run, from 0.1 at
# chance) and that `kiln evaluate` on the interpreter of its checkpoint finds the test accuracy it printed, to
# within 3 images of 10,000 (compiled float32 rounding can flip the argmax of a near tie, as in
# tests/aot/example_readme.sh).
#
# usage: build_exe.sh KILN SOURCE_DIR WORK_DIR
set -eu
KILN=$1 SRC=$2 WORK=$3
rm -rf "$WORK"
mkdir -p "$WORK/bin"
cd "$WORK"
"$KILN" build "$SRC/examples/fashion_mlp/fashion_mlp.model.pbtxt" -o fashion_train
if ldd fashion_train | grep -i llvm; then
  echo "the built program links LLVM"
  exit 1
fi
cp fashion_train bin/
env -i PATH=/usr/bin:/bin bin/fashion_train --help > help.log
grep -q -- "--epochs N" help.log
grep -q "Usage: fashion_train \[options\]" help.log
env -i PATH=/usr/bin:/bin bin/fashion_train --train-limit 2000 --validation-rows 1000 --epochs 2 \
  --save ck.safetensors --no-progress | tee train.log
grep -q "^epoch 2/2: 10 steps" train.log
got=$(sed -n 's/^test: .*accuracy \([0-9.]*\).*/\1/p' train.log)
want=$("$KILN" evaluate "$SRC/examples/fashion_mlp/fashion_mlp.model.pbtxt" --checkpoint ck.safetensors \
  --validation-rows 1000 --executor interpreter | sed -n 's/^test: .*accuracy \([0-9.]*\).*/\1/p')
echo "built program: test accuracy $got; kiln evaluate of its checkpoint: $want"
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && w != "" && g >= 0.60 && d <= 0.0003) }'
echo "build_exe ok"
