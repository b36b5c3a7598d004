#!/usr/bin/env bash
# Train the learned codecs of results/kodak-learned at a CPU budget, through the suite's one
# training loop. Usage: train.sh RUNS_DIR NAME... (no NAME: all). Re-running resumes.
# Training data: the photos embedded in scikit-image/scikit-learn (not Kodak, which is the
# test set), cut into 256x256 tiles; each step takes a random 128x128 crop of each tile.
set -euo pipefail
runs=${1:?usage: train.sh RUNS_DIR [NAME...]}; shift
common=(--dataset embedded:patches=256 --split all --set optimizer=adam
        --set checkpoint_every=200 --set log_every=50 --set progress=false)
# CompressAI's loss is in the suite's units (nats per crop): times 128*128*ln2 = 11357,
# so a gradient-norm clip of 11357 is CompressAI's clip_max_norm=1.0.
compressai=(--steps "${STEPS:-2000}" --set crop=128 --set batch_size=8 --set lr=5e-4
            --set ema_decay=0.99 --set N=64 --set M=96 --set grad_clip=11357)
# Our VAEs code Kodak in 32x32 tiles with an 8-bit likelihood; beta sets the trade-off.
tiles=(--set in_channels=3 --set image_size=32 --set likelihood=logistic-mixture --set crop=32
       --set batch_size=64 --set lr=1e-3)
vae=(--steps "${VAE_STEPS:-3000}" "${tiles[@]}")
vlae=(--steps "${VLAE_STEPS:-2000}" "${tiles[@]}")  # its PixelCNN makes each step dearer
train() {  # NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  vlae-bench train "$model" "${common[@]}" "$@" --out "$runs/$name"
}
declare -A jobs=(
  [factorized-0.0035]="bmshj2018-factorized ${compressai[*]} --set lmbda=0.0035"
  [factorized-0.013]="bmshj2018-factorized ${compressai[*]} --set lmbda=0.013"
  [factorized-0.0483]="bmshj2018-factorized ${compressai[*]} --set lmbda=0.0483"
  [hyperprior-0.0035]="bmshj2018-hyperprior ${compressai[*]} --set lmbda=0.0035"
  [hyperprior-0.013]="bmshj2018-hyperprior ${compressai[*]} --set lmbda=0.013"
  [hyperprior-0.0483]="bmshj2018-hyperprior ${compressai[*]} --set lmbda=0.0483"
  [mbt-mean-0.013]="mbt2018-mean ${compressai[*]} --set lmbda=0.013"
  [beta-vae-0.3]="beta-vae ${vae[*]} --set latent_dim=64 --set width=64 --beta 0.3"
  [beta-vae-1]="beta-vae ${vae[*]} --set latent_dim=64 --set width=64 --beta 1"
  [beta-vae-3]="beta-vae ${vae[*]} --set latent_dim=64 --set width=64 --beta 3"
  [vlae-0.3]="vlae ${vlae[*]} --beta 0.3"
  [vlae-1]="vlae ${vlae[*]}"
  [hvae-0.3]="hvae ${vae[*]} --set width=64 --set z_channels=4 --beta 0.3"
  [hvae-1]="hvae ${vae[*]} --set width=64 --set z_channels=4 --beta 1"
  [hvae-3]="hvae ${vae[*]} --set width=64 --set z_channels=4 --beta 3"
)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${!jobs[@]}")
for name in "${names[@]}"; do
  # shellcheck disable=SC2086  # the job's words are split on purpose
  train "$name" ${jobs[$name]}
done
