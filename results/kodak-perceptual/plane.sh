#!/usr/bin/env bash
# The perception–distortion plane on the 24 Kodak images' 128 x 128 centre crops (the VLAE
# decodes pixel by pixel: ~15 s a crop on one core), with the VLAE's seeded draws and its
# decoder's means from the same streams. Run from the repository root:
#   bash results/kodak-perceptual/plane.sh OUT
set -euo pipefail
out="${1:-results/kodak-perceptual/plane}"
vlae-bench codecs --dataset kodak:crop=128 --workers 2 --out "$out" \
  -c jpeg=5,10,20,40,70 -c webp=5,20,50,80 \
  -c bmshj2018-factorized:zoo:factorized-photos-0.0035 \
  -c bmshj2018-factorized:zoo:factorized-photos-0.013 \
  -c bmshj2018-factorized:zoo:factorized-photos-0.0483 \
  -c bmshj2018-hyperprior:zoo:hyperprior-photos-0.0035 \
  -c bmshj2018-hyperprior:zoo:hyperprior-photos-0.013 \
  -c bmshj2018-hyperprior:zoo:hyperprior-photos-0.0483 \
  -c zoo:beta-vae-photos-0.3 -c zoo:beta-vae-photos-1 -c zoo:beta-vae-photos-3 \
  -c zoo:hvae-photos-0.3 -c zoo:hvae-photos-1 -c zoo:hvae-photos-3 \
  -c zoo:vlae-photos-0.3 -c zoo:vlae-photos-1 \
  -c zoo-mean:vlae-photos-0.3 -c zoo-mean:vlae-photos-1 \
  --metrics lpips-alex,dists
