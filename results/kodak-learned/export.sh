#!/usr/bin/env bash
# Export the runs of train.sh as the zoo's weights-only files (fp16 storage: half the bytes;
# every number in this folder is computed from these files, not from the runs).
# Usage: export.sh RUNS_DIR
set -euo pipefail
runs=${1:?usage: export.sh RUNS_DIR}
for lmbda in 0.0035 0.013 0.0483; do
  vlae-bench zoo export "$runs/factorized-$lmbda" "factorized-photos-$lmbda" --fp16
  vlae-bench zoo export "$runs/hyperprior-$lmbda" "hyperprior-photos-$lmbda" --fp16
done
vlae-bench zoo export "$runs/mbt-mean-0.013" "mbt2018-mean-photos-0.013" --fp16
for beta in 0.3 1 3; do
  vlae-bench zoo export "$runs/beta-vae-$beta" "beta-vae-photos-$beta" --fp16
  vlae-bench zoo export "$runs/hvae-$beta" "hvae-photos-$beta" --fp16
done
vlae-bench zoo export "$runs/vlae-1" "vlae-photos-1" --fp16
