#!/usr/bin/env bash
# The gate on the hot paths issue 22 added (BB-ANS encode + decode, the VLAE decoder's cached
# PixelCNN steps, a one-line error's start-up, report rendering): a baseline run, two
# unchanged runs and the deliberate 2x slowdown, each gated against the baseline.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/perf-gate/new-paths
mkdir -p "$out"
select="reference or bits_back or pixelcnn or start_up or report_rendering"
perf() { python -m pytest -q -m perf tests/perf -k "$select" --benchmark-only \
           -p no:cacheprovider --benchmark-json "$1" > /dev/null; }
for run in 1 2 3; do perf "$out/unchanged-$run.json"; done
VLAE_BENCH_PERF_SLOWDOWN=2 perf "$out/slowdown-2x.json"
for run in 2 3; do
  vlae-bench perf-gate "$out/unchanged-1.json" "$out/unchanged-$run.json" \
    > "$out/gate-unchanged-$run.md" || true
done
vlae-bench perf-gate "$out/unchanged-1.json" "$out/slowdown-2x.json" > "$out/gate-slowdown-2x.md" || true
tail -n 1 "$out"/gate-*.md
