"""The perf gate on the committed perf sessions (results/perf-gate): five runs of an unchanged
tree on a shared 2-core machine and one with every hot path doing its work twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.speed.perf_gate import compare

RUNS = Path(__file__).resolve().parents[1] / "results" / "perf-gate"


@pytest.mark.parametrize("run", [2, 3, 4, 5])
def test_unchanged_runs_pass_despite_a_neighbour(run):
    """Run 2 shared the cores with a third process: gated on medians, JPEG XL moved +39.9 %."""
    table = compare(RUNS / "unchanged-1.json", RUNS / f"unchanged-{run}.json")
    assert len(table) == 17 and table["passes"].all(), table.loc[~table["passes"]]


def test_a_2x_slowdown_fails_every_benchmark():
    table = compare(RUNS / "unchanged-1.json", RUNS / "slowdown-2x.json")
    assert len(table) == 17 and not table["passes"].any()
    assert table["change"].min() > 0.5  # well clear of the 0.3 threshold


NEW = RUNS / "new-paths"  # issue 22: BB-ANS, PixelCNN steps, start-up, report (+ a train step)


@pytest.mark.parametrize("run", [2, 3])
def test_the_new_paths_pass_unchanged(run):
    table = compare(NEW / "unchanged-1.json", NEW / f"unchanged-{run}.json")
    assert len(table) == 5 and table["passes"].all(), table.loc[~table["passes"]]


def test_the_new_paths_fail_a_2x_slowdown():
    table = compare(NEW / "unchanged-1.json", NEW / "slowdown-2x.json")
    assert len(table) == 5 and not table["passes"].any(), table
