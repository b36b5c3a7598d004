#!/usr/bin/env bash
# The learning curve's run at its latest stage, published as a zoo entry of its own,
# vlae-binarized-mnist-<steps/1000>k (the 3500-step zoo:vlae-binarized-mnist stays: results
# and tests are pinned to it).
# Usage: bash results/vlae-ablation/learning-curve/publish.sh STEP ...
#        (in order: export checks elbo iwae whole-split; whole-split-from-end on a second core)
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
run=runs/vlae-curve
step=$(python -c "from vlae_models.checkpoint import read_meta as m; print(m('$run/checkpoint.safetensors')['step'])")
name=vlae-binarized-mnist-$((step / 1000))k
lossless=results/binarized-mnist-lossless
common=(--dataset binarized-mnist --split test --no-progress)
for step in "$@"; do
  case $step in
    export)  # float16: 17.8 MB in float32 is over the zoo's limit
      vlae-bench zoo export "$run" "$name" --fp16 ;;
    checks)  # what float16 storage changes, on the 500 spread test images
      vlae-bench eval "zoo:$name" "${common[@]}" --limit 500 --out "results/zoo/checks/$name"
      vlae-bench eval "$run/checkpoint.safetensors" "${common[@]}" --limit 500 \
        --out "results/zoo/checks/$name-fp32" ;;
    elbo)  # -ELBO, KL, active units on all 10 000 test images
      vlae-bench eval "zoo:$name" "${common[@]}" --out "$lossless/vlae-10k-elbo" ;;
    iwae)  # IWAE k = 1000 on the 500 images the zoo VLAE's 82.15 was measured on
      vlae-bench eval "zoo:$name" "${common[@]}" --iw-samples 1000 --limit 500 --compile \
        --out "$lossless/vlae-10k-iwae"
      vlae-bench zoo reference "$name" "$lossless/vlae-10k-elbo" "$lossless/vlae-10k-iwae" \
        "results/zoo/checks/$name" ;;
    whole-split)  # IWAE k = 1000 on all 10 000, 20 resumable shards; records test/10000/iwae
      python results/vlae-ablation/full-test-iwae/run.py --weights "zoo:$name" \
        --out "results/vlae-ablation/full-test-iwae/$name" ;;
    whole-split-from-end)  # the same shards, last to first: the two meet in the middle
      python results/vlae-ablation/full-test-iwae/run.py --weights "zoo:$name" \
        --out "results/vlae-ablation/full-test-iwae/$name" --from-end ;;
    *) echo "unknown step '$step'" >&2; exit 2 ;;
  esac
done
