#!/usr/bin/env bash
# Rate-distortion on 8-bit MNIST: classical codecs and 8-bit models on the same 1000 test images
# (every 10th, spread over the split), in one command, one table and one figure.
# The models are the zoo's, trained with a discrete logistic-mixture likelihood:
#   vlae-bench train beta-vae --dataset mnist --beta 1 --steps 20000 \
#     --set likelihood=logistic-mixture --set warmup_steps=2000 --out RUN   (zoo:beta-vae-mnist)
#   vlae-bench train vlae --dataset mnist --steps 1500 --set likelihood=logistic-mixture \
#     --set checkpoint_every=250 --out RUN                                   (zoo:vlae-mnist)
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
vlae-bench codecs --dataset mnist --split test --limit 1000 \
  -c jpeg -c webp -c avif -c png --quality 5:95:10 \
  -c zoo:beta-vae-mnist -c zoo:vlae-mnist --workers 2 --out results/mnist-rd
