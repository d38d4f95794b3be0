#!/bin/sh
# The book's transfer-learning experiment (chapter 11), end to end on Fashion-MNIST:
#   1. model A on the 8 classes other than sandal (5) and shirt (6);
#   2. model B (shirt or sandal) from scratch on 200 labelled images;
#   3. model B on A: A's hidden layers restored and frozen while the new output layer learns,
#   4. then unfrozen and fine-tuned with a lower learning rate.
# Test accuracies (on the 2,000 test images of the two classes) are printed at the end.
# Usage: sh examples/transfer_b/run.sh [OUT_DIR]   (KILN=path/to/kiln to choose the binary)
set -e
KILN=${KILN:-./build/compiler/kiln}
OUT=${1:-runs/transfer}
mkdir -p "$OUT"
B=examples/transfer_b/transfer_b.model.pbtxt
BFLAGS="--classes 5,6 --train-limit 200 --no-progress"

"$KILN" train examples/transfer_a/transfer_a.model.pbtxt --classes 0,1,2,3,4,7,8,9 --no-progress \
  --save "$OUT/a.safetensors" --metrics "$OUT/a.jsonl" | tee "$OUT/a.log"
"$KILN" train $B $BFLAGS --epochs 20 --save "$OUT/b_scratch.safetensors" | tee "$OUT/b_scratch.log"
"$KILN" train $B $BFLAGS --epochs 4 --init-from "$OUT/a.safetensors" --restore 'hidden[1-5]/.*' \
  --freeze 'hidden[1-5]/.*' --save "$OUT/b_frozen.safetensors" | tee "$OUT/b_frozen.log"
"$KILN" train $B $BFLAGS --epochs 16 --init-from "$OUT/b_frozen.safetensors" --restore '.*' \
  --learning-rate 0.0001 --save "$OUT/b_on_a.safetensors" | tee "$OUT/b_on_a.log"

echo
echo "model A (8 classes):                       $(grep '^test:' "$OUT/a.log")"
echo "model B from scratch (200 images):         $(grep '^test:' "$OUT/b_scratch.log")"
echo "model B on A, frozen (4 epochs):           $(grep '^test:' "$OUT/b_frozen.log")"
echo "model B on A, then unfrozen (16 epochs):   $(grep '^test:' "$OUT/b_on_a.log")"
