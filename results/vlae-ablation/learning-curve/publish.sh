#!/usr/bin/env bash
# The learning curve's run at its latest stage, published as a zoo entry of its own,
# vlae-binarized-mnist-<steps/1000>k (the 3500-step zoo:vlae-binarized-mnist stays: results
# and tests are pinned to it).
# Usage: bash results/vlae-ablation/learning-curve/publish.sh TASK ...
#        (in order: export checks elbo iwae whole-split; whole-split-from-end on a second core)
set -euo pipefail
export OMP_NUM_THREADS=1 VLAE_BENCH_DATA="${VLAE_BENCH_DATA:-../shared/data}"
run=runs/vlae-curve
stage=$(python -c "from vlae_models.checkpoint import read_meta as m
print(m('$run/checkpoint.safetensors')['step'])")
if (( stage % 1000 )); then size=$stage; else size=$((stage / 1000))k; fi
name=vlae-binarized-mnist-$size
evals=results/binarized-mnist-lossless/vlae-$size  # -elbo and -iwae
shards=results/vlae-ablation/full-test-iwae/$name
common=(--dataset binarized-mnist --split test --no-progress)
for task in "$@"; do
  case $task in
    export)  # float16: 17.8 MB in float32 is over the zoo's limit
      vlae-bench zoo export "$run" "$name" --fp16 ;;
    checks)  # what float16 storage changes, on the 500 spread test images
      vlae-bench eval "zoo:$name" "${common[@]}" --limit 500 --out "results/zoo/checks/$name"
      vlae-bench eval "$run/checkpoint.safetensors" "${common[@]}" --limit 500 \
        --out "results/zoo/checks/$name-fp32" ;;
    elbo)  # -ELBO, KL, active units on all 10 000 test images
      vlae-bench eval "zoo:$name" "${common[@]}" --out "$evals-elbo" ;;
    iwae)  # IWAE k = 1000 on the 500 images the zoo VLAE's 82.15 was measured on
      vlae-bench eval "zoo:$name" "${common[@]}" --iw-samples 1000 --limit 500 --compile \
        --out "$evals-iwae"
      vlae-bench zoo reference "$name" "$evals-elbo" "$evals-iwae" "results/zoo/checks/$name" ;;
    whole-split)  # IWAE k = 1000 on all 10 000, 20 resumable shards; records test/10000/iwae
      python results/vlae-ablation/full-test-iwae/run.py --weights "zoo:$name" --out "$shards" ;;
    whole-split-from-end)  # the same shards, last to first: the two meet in the middle
      python results/vlae-ablation/full-test-iwae/run.py --weights "zoo:$name" --out "$shards" \
        --from-end ;;
    *) echo "unknown task '$task'" >&2; exit 2 ;;
  esac
done
