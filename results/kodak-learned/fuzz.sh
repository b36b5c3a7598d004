#!/usr/bin/env bash
# 600 mutated streams per learned codec (truncated, bit-flipped, spliced; half with the CRC
# recomputed), decoded one by one: each must be refused in one line or decode to an image.
# Writes results/kodak-learned/fuzz.txt. The VLAE and VQ-VAE run on binarized MNIST (the
# RGB VLAE decodes a 128x128 crop in about 10 s; there is no RGB VQ-VAE in the zoo).
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
out=results/kodak-learned/fuzz.txt
: > "$out"
for spec in bmshj2018-factorized:zoo:factorized-photos-0.013 \
            bmshj2018-hyperprior:zoo:hyperprior-photos-0.013 \
            mbt2018-mean:zoo:mbt2018-mean-photos-0.013 zoo:beta-vae-photos-1 zoo:hvae-photos-1; do
  { echo "== $spec on kodak:crop=128"; vlae-bench fuzz -c "$spec" --dataset kodak:crop=128; } >> "$out"
done
for name in vq-vae vlae; do
  { echo "== zoo:$name-binarized-mnist on binarized-mnist"
    vlae-bench fuzz -c "zoo:$name-binarized-mnist" --dataset binarized-mnist; } >> "$out"
done
