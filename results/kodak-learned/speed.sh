#!/usr/bin/env bash
# One CompressAI checkpoint on all 24 Kodak images, side by side on one thread each:
# CompressAI's own eval_model and `vlae-bench codecs` (alternated, twice), then their numbers.
# Usage: speed.sh CHECKPOINT.pth.tar [ARCH]   (CompressAI's layout: vlae-bench export-compressai)
set -euo pipefail
ckpt=${1:?usage: speed.sh CHECKPOINT [ARCH]}; arch=${2:-bmshj2018-hyperprior}
data=${VLAE_BENCH_DATA:-../shared/data}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1  # eval_model calls torch.set_num_threads(1); our worker does too
TIMEFORMAT=%R
for round in 1 2; do
  t=$( { time python -m compressai.utils.eval_model checkpoint "$data/kodak" -a "$arch" \
          -p "$ckpt" > "$tmp/eval_model-$round.json" 2> /dev/null; } 2>&1 )
  echo "round $round: eval_model        $t s"
  t=$( { time vlae-bench codecs --dataset kodak --data-dir "$data" -c "$arch:$ckpt" \
          --workers 1 --out "$tmp/ours-$round" > /dev/null 2>&1; } 2>&1 )
  echo "round $round: vlae-bench codecs $t s"
done
python - "$tmp" <<'PY'
import json, sys
import pandas as pd
tmp = sys.argv[1]
theirs = {k: v[0] for k, v in json.load(open(f"{tmp}/eval_model-1.json"))["results"].items()}
ours = pd.read_parquet(f"{tmp}/ours-1/results.parquet").query("rate_kind == 'coded'")
for key, column in (("bpp", "bpp"), ("psnr-rgb", "psnr"), ("ms-ssim-rgb", "ms_ssim")):
    print(f"{key:12} eval_model {theirs[key]:.6f}   vlae-bench {ours[column].mean():.6f}")
for key, column in (("encoding_time", "enc_s"), ("decoding_time", "dec_s")):
    print(f"{key:14} eval_model {theirs[key]:.4f} s/img   vlae-bench {ours[column].mean():.4f} s/img")
PY
