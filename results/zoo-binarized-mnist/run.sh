#!/usr/bin/env bash
# Reference runs of the model zoo on statically binarized MNIST (CPU, one thread per run).
# Usage: bash results/zoo-binarized-mnist/run.sh MODEL   (beta-vae | vq-vae | hvae)
# Training folders go to runs/zoo/MODEL (not committed); evaluation tables to this folder.
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
model=$1
here=results/zoo-binarized-mnist
case $model in
  beta-vae) steps=60000; extra=(--set warmup_steps=5000) ;;
  vq-vae)   steps=60000; extra=() ;;
  hvae)     steps=40000; extra=(--set warmup_steps=5000) ;;
  *) echo "unknown model $model" >&2; exit 2 ;;
esac
time vlae-bench train "$model" --dataset binarized-mnist --beta 1 --steps "$steps" "${extra[@]}" \
  --eval-split valid --out "runs/zoo/$model"
time vlae-bench eval "runs/zoo/$model/checkpoint.safetensors" --dataset binarized-mnist \
  --split test --iw-samples 1000 --out "$here/$model"
