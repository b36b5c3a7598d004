#!/usr/bin/env bash
# The VLAE ablation on statically binarized MNIST under one CPU budget per arm
# (arms and paper numbers: benchmarks/specs/vlae_mnist.toml, docs/vlae.md).
# Usage: bash results/vlae-ablation/run.sh ARM SEED
#   ARM: vlae | vlae-gaussian | pixelcnn | vlae-large-window | vlae-factorised-decoder
# Steps per arm are set so that every arm gets about 20 minutes of one CPU core (measured
# step times at batch 128: vlae 1.0, gaussian prior 0.84, factorised decoder 0.80,
# pixelcnn 0.62, large window 2.56, relative to the VLAE's). Checkpoints go to
# $VLAE_RUNS/vlae/ARM-sSEED (default runs/); rerunning resumes. Evaluation: negative ELBO
# and KL on the full test split, and the IWAE NLL (k = 1000) on 500 test images (200 for the
# large window) spread evenly over the (digit-sorted) split. The training's run.json and loss log are copied to
# results/vlae-ablation/ARM-sSEED/train/ ($VLAE_RESULTS/ARM-sSEED/ if set). SMOKE=1 runs
# every step at toy size (20 steps, small evaluations). When every arm has run:
#   vlae-bench compare benchmarks/specs/vlae_mnist.toml --results results/vlae-ablation \
#     --dataset binarized-mnist
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
arm=$1 seed=$2 iwae_images=500 k=1000 elbo_limit=()
runs=${VLAE_RUNS:-runs}/vlae/$arm-s$seed
here=${VLAE_RESULTS:-results/vlae-ablation}/$arm-s$seed
case $arm in
  vlae)                    model=vlae;     steps=3500; set=() ;;
  vlae-gaussian)           model=vlae;     steps=4200; set=(--set prior=gaussian) ;;
  vlae-factorised-decoder) model=vlae;     steps=4400; set=(--set pixelcnn_kernel=1) ;;
  pixelcnn)                model=pixelcnn; steps=5600; set=() ;;
  vlae-large-window)       model=vlae;     steps=1400; iwae_images=200  # 3x slower decoder
                           set=(--set pixelcnn_layers=12 --set pixelcnn_kernel=7 --set free_bits_per_pixel=0) ;;
  *) echo "unknown arm $arm" >&2; exit 2 ;;
esac
if [[ ${SMOKE:-0} == 1 ]]; then  # the pipeline end to end in a minute (tests/test_ablation_smoke.py)
  steps=20 iwae_images=8 k=16 elbo_limit=(--limit 16)
fi
time vlae-bench train "$model" --dataset binarized-mnist --steps "$steps" "${set[@]}" \
  --set seed="$seed" --set checkpoint_every=250 --out "$runs"
mkdir -p "$here/train" && cp "$runs/run.json" "$runs/train_log.jsonl" "$here/train/"
time vlae-bench eval "$runs/checkpoint.safetensors" --dataset binarized-mnist --split test \
  "${elbo_limit[@]}" --out "$here/elbo"
time vlae-bench eval "$runs/checkpoint.safetensors" --dataset binarized-mnist --split test \
  --iw-samples "$k" --limit "$iwae_images" --out "$here/iwae"
