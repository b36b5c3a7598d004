#!/usr/bin/env bash
# Rate–distortion theory checks (issue 12): linear β-VAE on an 8-dim Gaussian source and an MLP
# β-VAE on 16 i.i.d. Bernoulli(0.2) bits against their R(D); Blahut–Arimoto against the closed
# forms; I(x;z) <= KL on the committed β sweep and the zoo's binarized-MNIST models.
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
vlae-bench sweep benchmarks/specs/rd_theory.toml -j 2 --out results/rd-theory/sweep
vlae-bench rd-theory --beta-sweep results/beta-sweep-mnist \
  --out results/rd-theory/checks --overwrite
