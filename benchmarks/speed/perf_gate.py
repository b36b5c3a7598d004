"""A machine-independent performance gate over pytest-benchmark results.

Absolute times differ between machines, and shared CI hosts add 10-30 % noise from run to run.
So each benchmark is divided by a fixed reference workload (:func:`reference_workload`, a
plain matmul and convolution) timed in the *same* run, beside it: the ratio moves when the
code gets slower, much less when the machine does. :func:`compare` gates a run against a
baseline run on that ratio (``vlae-bench perf-gate BASELINE.json CURRENT.json``).

The benchmark's time is its *fastest* round: another process on the machine only ever adds
time, so the minimum is the estimate a neighbour moves least. On the committed runs
(``results/perf-gate``) the median gave one false alarm among four unchanged runs (JPEG XL
+39.9 % while a third process shared the two cores); the minimum gives none (largest change
+24 %) and still fails all 17 benchmarks of the 2x slowdown (smallest change +70 %).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmarks.errors import BenchError

REFERENCE = "test_reference_workload"


def reference_workload() -> float:
    """A fixed dense workload: 8 products of 384 x 384 matrices and a 3 x 3 convolution of a
    (8, 16, 64, 64) batch, float32, from fixed inputs."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(384, 384, generator=gen)
    for _ in range(8):
        a = torch.tanh(a @ a.T / 384.0)
    x = torch.randn(8, 16, 64, 64, generator=gen)
    w = torch.randn(16, 16, 3, 3, generator=gen)
    return float(a.sum() + torch.nn.functional.conv2d(x, w, padding=1).sum())


def ratios(path: Path) -> dict[str, float]:
    """``{benchmark: fastest round / reference median}`` of a pytest-benchmark JSON file.

    The reference is the one timed beside each benchmark, round by round
    (``extra_info["reference_median_s"]``, see ``tests/perf/test_hot_paths.py``); a benchmark
    without one is divided by the run's own ``test_reference_workload``.
    """
    try:
        data = json.loads(Path(path).read_text())
        found = {b["name"]: (float(b["stats"]["min"]), float(b["stats"]["median"]),
                             b.get("extra_info", {}).get("reference_median_s"))
                 for b in data["benchmarks"]}  # fmt: skip
    except FileNotFoundError:
        raise BenchError(f"no benchmark results at {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BenchError(f"{path} is not a pytest-benchmark JSON file ({err})") from None
    if REFERENCE not in found:
        raise BenchError(f"{path} has no {REFERENCE}: run the whole perf session")
    run_reference = found[REFERENCE][1]  # its median, as the reference beside is given
    return {name: fastest / (beside or run_reference)
            for name, (fastest, _, beside) in found.items() if name != REFERENCE}  # fmt: skip


def compare(baseline: Path, current: Path, threshold: float = 0.3) -> pd.DataFrame:
    """One row per benchmark of both runs: the ratios, their change, and whether it passes
    (``change <= threshold``: 0.3 lets a benchmark get 30 % slower against the reference)."""
    before, after = ratios(baseline), ratios(current)
    rows = []
    for name in sorted(set(before) & set(after)):
        change = after[name] / before[name] - 1.0
        rows.append({"benchmark": name, "baseline_ratio": before[name],
                     "current_ratio": after[name], "change": change,
                     "passes": change <= threshold})  # fmt: skip
    if not rows:
        raise BenchError(f"{baseline} and {current} share no benchmark")
    return pd.DataFrame(rows)
