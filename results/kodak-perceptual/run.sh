#!/usr/bin/env bash
# results/kodak-perceptual: all 24 Kodak images, classical and learned codecs and the zoo's
# photo models as real codecs, scored with PSNR, MS-SSIM and the perceptual metrics.
# Needs $VLAE_BENCH_DATA (Kodak) and the perceptual weights (--weights-dir or
# $VLAE_BENCH_WEIGHTS). Run from the repository root: bash results/kodak-perceptual/run.sh OUT
set -euo pipefail
out="${1:-results/kodak-perceptual}"
vlae-bench codecs --dataset kodak --workers 2 --out "$out" \
  -c jpeg=10,30,50,80 -c webp=10,30,50,80 -c avif=30,50,70 -c jxl=30,60,90 \
  -c bmshj2018-factorized:zoo:factorized-photos-0.0035 \
  -c bmshj2018-factorized:zoo:factorized-photos-0.013 \
  -c bmshj2018-factorized:zoo:factorized-photos-0.0483 \
  -c bmshj2018-hyperprior:zoo:hyperprior-photos-0.0035 -c bmshj2018-hyperprior:zoo:hyperprior-photos-0.013 -c bmshj2018-hyperprior:zoo:hyperprior-photos-0.0483 \
  -c mbt2018-mean:zoo:mbt2018-mean-photos-0.013 \
  -c zoo:beta-vae-photos-0.3 -c zoo:beta-vae-photos-1 -c zoo:beta-vae-photos-3 \
  -c zoo:hvae-photos-0.3 -c zoo:hvae-photos-1 -c zoo:hvae-photos-3 \
  --metrics lpips-alex,lpips-vgg,dists,vifp,fsim,gmsd,haarpsi
