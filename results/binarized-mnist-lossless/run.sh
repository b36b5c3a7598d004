#!/usr/bin/env bash
# Lossless coding of the statically binarized MNIST test split (10 000 images): generic coders
# per image and on the whole split as one image, beside the zoo models' likelihood bounds.
# Usage: bash results/binarized-mnist-lossless/run.sh [codecs|MODEL ...]
#   codecs: gzip, bz2, lzma and PNG, per image and as one 2800 x 2800 mosaic
#   MODEL:  beta-vae | hvae | vq-vae | vlae | pixelcnn -- `vlae-bench eval zoo:MODEL-binarized-mnist`
# then: vlae-bench report results/binarized-mnist-lossless/* --out results/binarized-mnist-lossless
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
here=results/binarized-mnist-lossless
for what in "$@"; do
  case $what in
    codecs)
      vlae-bench codecs --dataset binarized-mnist --split test -c gzip -c bz2 -c lzma -c png \
        --workers 1 --out "$here/codecs-per-image"
      vlae-bench codecs --dataset binarized-mnist:mosaic --split test -c gzip -c bz2 -c lzma \
        -c png --workers 1 --out "$here/codecs-whole-split" ;;
    vlae)  # IWAE over the full split would take ~9 CPU-hours: 500 images spread over it
      vlae-bench eval zoo:vlae-binarized-mnist --dataset binarized-mnist --split test \
        --no-progress --out "$here/vlae-elbo"
      vlae-bench eval zoo:vlae-binarized-mnist --dataset binarized-mnist --split test \
        --iw-samples 1000 --limit 500 --no-progress --out "$here/vlae-iwae" ;;
    pixelcnn)  # no latent code: its exact NLL
      vlae-bench eval zoo:pixelcnn-binarized-mnist --dataset binarized-mnist --split test \
        --no-progress --out "$here/pixelcnn" ;;
    vq-vae)  # no continuous posterior: its two code lengths plus distortion
      vlae-bench eval zoo:vq-vae-binarized-mnist --dataset binarized-mnist --split test \
        --no-progress --out "$here/vq-vae" ;;
    *)
      vlae-bench eval "zoo:$what-binarized-mnist" --dataset binarized-mnist --split test \
        --iw-samples 1000 --no-progress --out "$here/$what" ;;
  esac
done
