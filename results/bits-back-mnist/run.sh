#!/usr/bin/env bash
# Bits-back coding (BB-ANS) of the statically binarized MNIST test split with the zoo's models.
# Usage: bash results/bits-back-mnist/run.sh [beta-vae|hvae|vlae|vlae-split|precision ...]
#   beta-vae, hvae: all 10 000 images, encoded and decoded (10 messages of 1000; the β-VAE in
#                   chains of 100 side by side, the HVAE one chain each)
#   vlae:           1000 images spread over the split, encoded and decoded (10 chains side by side)
#   vlae-split:     all 10 000 images encoded (real message lengths; decoding is 784 sequential
#                   PixelCNN passes an image, ~2.5 CPU-hours for the split), 1000 of them decoded
#   precision:      the β-VAE at latent precisions 2..12 bits on 1000 spread images
# then: vlae-bench report results/bits-back-mnist/{beta-vae,hvae,vlae} \
#         results/binarized-mnist-lossless/{codecs-whole-split,beta-vae,hvae,vlae-elbo,vlae-iwae} \
#         --out results/bits-back-mnist/report
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
here=results/bits-back-mnist
for what in "$@"; do
  case $what in
    beta-vae|hvae)
      vlae-bench codecs --dataset binarized-mnist --split test \
        -c "bb-ans:zoo:$what-binarized-mnist" --workers 1 --overwrite --out "$here/$what" ;;
    vlae)
      vlae-bench codecs --dataset binarized-mnist --split test \
        -c bb-ans:zoo:vlae-binarized-mnist --limit 1000 --workers 1 --overwrite --out "$here/vlae" ;;
    vlae-split)
      python "$here/vlae_split.py" --out "$here/vlae-split.json" ;;
    precision)
      vlae-bench codecs --dataset binarized-mnist --split test \
        -c bb-ans:zoo:beta-vae-binarized-mnist=2,4,6,8,10,12 --limit 1000 --workers 1 --overwrite \
        --out "$here/beta-vae-precision" ;;
    *) echo "unknown part '$what'" >&2; exit 2 ;;
  esac
done
