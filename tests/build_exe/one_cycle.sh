#!/bin/sh
# kiln build of a one_cycle model whose total_steps is set: the built program trains 2 epochs of
# 10 steps (T = 20, so the rate climbs to 0.05 and comes back down) and prints the same losses
# and accuracies as kiln train on the JIT with the same flags, line for line.
#
# usage: one_cycle.sh KILN SOURCE_DIR WORK_DIR
set -eu
KILN=$1 SRC=$2 WORK=$3
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
MODEL="$SRC/tests/build_exe/one_cycle.model.pbtxt"
"$KILN" build "$MODEL" -o train_1cycle
FLAGS="--train-limit 1000 --validation-rows 500 --no-progress"
./train_1cycle $FLAGS > built.log
"$KILN" train "$MODEL" $FLAGS > jit.log
grep '^epoch\|^test' built.log | sed -E 's/, [0-9.]+ s, [0-9]+ samples\/s//' > built.txt
grep '^epoch\|^test' jit.log | sed -E 's/, [0-9.]+ s, [0-9]+ samples\/s//' > jit.txt
cat built.txt
test "$(wc -l < built.txt)" -ge 3
diff built.txt jit.txt
echo "one_cycle ok"
