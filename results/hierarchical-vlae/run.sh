#!/usr/bin/env bash
# The hierarchical VLAE on statically binarized MNIST beside the VLAE and the HVAE (issue 23).
# Usage: bash results/hierarchical-vlae/run.sh STEP ...   (in order: train export eval
#        one-level level-free-bits hvae-iwae bits-back figures table)
# Training goes to runs/hierarchical-vlae (not committed); its weights to the zoo.
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
here=results/hierarchical-vlae
run=runs/hierarchical-vlae
name=hierarchical-vlae-binarized-mnist
for step in "$@"; do
  case $step in
    train)  # the zoo VLAE's budget and settings: 3500 steps, seed 1, Adamax 2e-3, batch 128
      vlae-bench train hierarchical-vlae --dataset binarized-mnist --steps 3500 --set seed=1 \
        --set checkpoint_every=250 --set progress=false --out "$run"
      cp "$run/run.json" "$run/train_log.jsonl" "$here/train/" ;;
    export)
      vlae-bench zoo export "$run" "$name" --fp16 ;;  # 20 MB in float32: the flow's masks
    eval)  # -ELBO, KL per level, active units on all 10 000; IWAE k = 1000 on 500 spread images
      vlae-bench eval "zoo:$name" --dataset binarized-mnist --split test --no-progress \
        --out "$here/elbo"
      vlae-bench eval "zoo:$name" --dataset binarized-mnist --split test --iw-samples 1000 \
        --limit 500 --compile --no-progress --out "$here/iwae" ;;
    one-level)  # the control: the same model with one level (is it the hierarchy, or the parts?)
      vlae-bench train hierarchical-vlae --dataset binarized-mnist --steps 3500 --set seed=1 \
        --set levels=1 --set checkpoint_every=250 --set progress=false \
        --out runs/hierarchical-vlae-1level
      mkdir -p "$here/one-level/train"
      cp runs/hierarchical-vlae-1level/{run.json,train_log.jsonl} "$here/one-level/train/"
      vlae-bench eval runs/hierarchical-vlae-1level/checkpoint.safetensors \
        --dataset binarized-mnist --split test --no-progress --out "$here/one-level/elbo" ;;
    level-free-bits)  # the second arm: free bits per level (3.92 nats each, the same 7.84 in
      # all), so that the lower level cannot be left empty as with the total floor
      vlae-bench train hierarchical-vlae --dataset binarized-mnist --steps 3500 --set seed=1 \
        --set free_bits_mode=level --set free_bits=3.92 --set checkpoint_every=250 \
        --set progress=false --out runs/hierarchical-vlae-level-fb
      mkdir -p "$here/level-free-bits/train"
      cp runs/hierarchical-vlae-level-fb/{run.json,train_log.jsonl} "$here/level-free-bits/train/"
      vlae-bench eval runs/hierarchical-vlae-level-fb/checkpoint.safetensors \
        --dataset binarized-mnist --split test --no-progress --out "$here/level-free-bits/elbo" ;;
    hvae-iwae)  # the HVAE on the same 500 images (the VLAE's is results/binarized-mnist-lossless/vlae-iwae)
      vlae-bench eval zoo:hvae-binarized-mnist --dataset binarized-mnist --split test \
        --iw-samples 1000 --limit 500 --no-progress --out "$here/hvae-iwae" ;;
    bits-back)  # BB-ANS, every image decoded and compared; one chain (~5000 initial bits)
      vlae-bench codecs --dataset binarized-mnist --split test --limit 500 \
        -c "bb-ans:zoo:$name=8" --workers 1 --out "$here/bits-back" ;;
    figures)
      python "$here/figures.py" ;;
    table)
      python "$here/table.py" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
