#!/usr/bin/env bash
# The machine-independent perf gate, shown on this machine: five perf sessions of an unchanged
# tree (the first is the baseline) and one with a deliberate 2x slowdown, each gated against
# the baseline on the ratio to the reference workload timed in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/perf-gate
perf() { python -m pytest -q -m perf tests/perf --benchmark-only -p no:cacheprovider \
           --benchmark-json "$1" > /dev/null; }
for run in 1 2 3 4 5; do perf "$out/unchanged-$run.json"; done
VLAE_BENCH_PERF_SLOWDOWN=2 perf "$out/slowdown-2x.json"
for run in 2 3 4 5; do
  vlae-bench perf-gate "$out/unchanged-1.json" "$out/unchanged-$run.json" \
    > "$out/gate-unchanged-$run.md" || true
done
vlae-bench perf-gate "$out/unchanged-1.json" "$out/slowdown-2x.json" > "$out/gate-slowdown-2x.md" || true
tail -n 1 "$out"/gate-*.md
