#!/usr/bin/env bash
# The VQ-VAE's PixelCNN prior on statically binarized MNIST (issue 23): code lengths of the
# zoo VQ-VAE's indices under its factorised prior and under the PixelCNN, stated and coded.
# Usage: bash results/vq-ar-prior/run.sh STEP ...   (in order: train export eval codecs table)
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
here=results/vq-ar-prior
run=runs/vq-vae-ar
name=vq-vae-ar-binarized-mnist
for step in "$@"; do
  case $step in
    train)  # the prior alone learns; the zoo VQ-VAE (zoo:vq-vae-binarized-mnist) stays frozen
      vlae-bench train vq-vae-ar --dataset binarized-mnist --steps 8000 --set progress=false \
        --eval-split valid --out "$run"
      mkdir -p "$here/train" && cp "$run/run.json" "$run/train_log.jsonl" "$here/train/" ;;
    export)
      vlae-bench zoo export "$run" "$name" ;;
    eval)  # both rate kinds and the distortion on all 10 000 test images, and the samples grid
      vlae-bench eval "zoo:$name" --dataset binarized-mnist --split test --no-progress \
        --out "$here/eval" ;;
    codecs)  # real streams of the indices, one digit per stream, decoded and scored, on all
      # 10 000 test images (each row also states the model's fixed and prior rates)
      vlae-bench codecs --dataset binarized-mnist --split test --overwrite \
        -c model:zoo:vq-vae-binarized-mnist -c "model:zoo:$name" --workers 1 \
        --out "$here/codecs" ;;
    table)
      python "$here/table.py" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
