#!/usr/bin/env bash
# The committed CPU throughput table: every model family (zoo weights) and codecs, one thread,
# batch sizes 1, 8, 64; then the training loop against a generic DataLoader loop.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/throughput-cpu
vlae-bench throughput \
  zoo:beta-vae-binarized-mnist zoo:hvae-binarized-mnist zoo:vq-vae-binarized-mnist \
  zoo:vlae-binarized-mnist zoo:pixelcnn-binarized-mnist \
  zoo:factorized-photos-0.013 zoo:hyperprior-photos-0.013 zoo:mbt2018-mean-photos-0.013 \
  jpeg=50 webp=50 png bmshj2018-hyperprior:zoo:hyperprior-photos-0.013 \
  --batch-size 1,8,64 --repeats 5 --threads 1 --out "$out"
vlae-bench throughput zoo:beta-vae-binarized-mnist zoo:vlae-binarized-mnist \
  --phase train_step --phase train_loop --phase dataloader_loop \
  --batch-size 8,32,128 --repeats 9 --threads 1 --out "$out/training-loop"
python results/throughput-cpu/iwae_speed.py > "$out/iwae_speed.json"
