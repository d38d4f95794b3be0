#!/bin/sh
# Unsupervised pretraining (chapter 11): train the autoencoder on all 55,000 training images
# without their labels, then train the classifier on only a few labelled images twice: from
# scratch, and with the autoencoder's encoder restored (frozen for the first run, as the book
# suggests when labels are scarce). Test accuracies on the 10,000 test images are printed.
# Usage: sh examples/autoencoder_classifier/run.sh [OUT_DIR] [LABELLED]   (default 500 labelled images)
set -e
KILN=${KILN:-./build/compiler/kiln}
OUT=${1:-runs/autoencoder}
N=${2:-500}
mkdir -p "$OUT"
C=examples/autoencoder_classifier/autoencoder_classifier.model.pbtxt

"$KILN" train examples/autoencoder/autoencoder.model.pbtxt --no-progress \
  --save "$OUT/autoencoder.safetensors" --metrics "$OUT/autoencoder.jsonl" | tee "$OUT/autoencoder.log"
"$KILN" train $C --train-limit "$N" --epochs 30 --no-progress --save "$OUT/scratch.safetensors" | tee "$OUT/scratch.log"
"$KILN" train $C --train-limit "$N" --epochs 30 --no-progress --init-from "$OUT/autoencoder.safetensors" \
  --restore 'encoder[12]/(kernel|bias)' --freeze 'encoder[12]/.*' --save "$OUT/pretrained_frozen.safetensors" \
  | tee "$OUT/pretrained_frozen.log"
"$KILN" train $C --train-limit "$N" --epochs 30 --no-progress --init-from "$OUT/autoencoder.safetensors" \
  --restore 'encoder[12]/(kernel|bias)' --save "$OUT/pretrained.safetensors" | tee "$OUT/pretrained.log"

echo
echo "autoencoder (reconstruction MSE):               $(grep '^test:' "$OUT/autoencoder.log")"
echo "classifier from scratch ($N labels):            $(grep '^test:' "$OUT/scratch.log")"
echo "classifier on the pretrained encoder, frozen:    $(grep '^test:' "$OUT/pretrained_frozen.log")"
echo "classifier on the pretrained encoder, trained:   $(grep '^test:' "$OUT/pretrained.log")"
