#!/usr/bin/env bash
# The Kodak rate-distortion comparison: classical codecs, CompressAI architectures trained by
# the suite, and our VAEs as real codecs, on all 24 Kodak images, one table and one report.
# The weights are the zoo's (results/zoo); to remake them: train.sh RUNS, then export.sh RUNS.
# The VLAE decodes through its PixelCNN pixel by pixel, so it runs on the 128x128 centre crops.
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
here=results/kodak-learned
classical=(-c jpeg=5,10,20,30,40,50,60,70,80,90 -c webp=5,10,20,30,40,50,60,70,80,90
           -c avif=5,10,20,30,40,50,60,70,80,90)
ours=()
for beta in 0.3 1 3; do ours+=(-c "zoo:beta-vae-photos-$beta" -c "zoo:hvae-photos-$beta"); done
compressai=()
for lmbda in 0.0035 0.013 0.0483; do
  compressai+=(-c "bmshj2018-factorized:zoo:factorized-photos-$lmbda"
               -c "bmshj2018-hyperprior:zoo:hyperprior-photos-$lmbda")
done
compressai+=(-c "mbt2018-mean:zoo:mbt2018-mean-photos-0.013")
# Two runs (their rows do not overlap), one report: the second can be remade alone.
vlae-bench codecs --dataset kodak "${classical[@]}" "${ours[@]}" --workers 2 --out "$here/kodak"
vlae-bench codecs --dataset kodak "${compressai[@]}" --workers 2 --out "$here/kodak-compressai"
vlae-bench codecs --dataset kodak:crop=128 "${classical[@]}" "${ours[@]}" "${compressai[@]}" \
  -c zoo:vlae-photos-1 --workers 2 --out "$here/kodak-crop128"
vlae-bench report "$here/kodak" "$here/kodak-compressai" "$here/kodak-crop128" --out "$here"
