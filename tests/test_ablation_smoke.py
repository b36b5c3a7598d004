"""The VLAE ablation through the sweep engine, every arm at toy size, then ``compare``.

``vlae-bench sweep vlae_mnist.toml --profile smoke`` trains each arm for 20 steps and runs
both evaluations on a few test images; the comparison must then hold exactly the numbers
those evaluations wrote. Slow (a few minutes): ``nox -s slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import benchmarks
from benchmarks.results import read_results
from benchmarks.studies.comparison import load_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPEC = Path(benchmarks.__file__).parent / "specs" / "vlae_mnist.toml"


def test_every_arm_runs_through_the_sweep_and_compare(tmp_path, binarized_mnist_dir) -> None:
    results = tmp_path / "results"
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ, "VLAE_BENCH_DATA": str(binarized_mnist_dir.parent),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }  # fmt: skip
    spec = load_spec(SPEC)
    done = subprocess.run(
        ["vlae-bench", "sweep", str(SPEC), "--profile", "smoke", "--out", str(results), "-j", "2"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(
        ["vlae-bench", "compare", str(SPEC), "--results", str(results),
         "--dataset", "binarized-mnist"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]

    seeds = pd.read_csv(results / "comparison_seeds.csv").set_index(["arm", "seed"])
    assert set(seeds.index) == {(a.name, seed) for a in spec.arms for seed in a.seeds}
    for arm in spec.arms:
        folder = results / f"{arm.name}-s1"
        iwae = read_results([folder / "iwae"]).iloc[0]
        elbo = read_results([folder / "elbo"]).iloc[0]
        assert (folder / "train" / "train_log.jsonl").exists()
        # the best NLL: the IWAE bound, or for the latent-free PixelCNN its exact NLL over the
        # larger (ELBO) evaluation
        best, estimator = (elbo, "exact") if arm.model == "pixelcnn" else (iwae, "iwae k=16")
        assert seeds.loc[(arm.name, 1), "nll"] == pytest.approx(best["nll_nats"], rel=1e-12)
        assert seeds.loc[(arm.name, 1), "nll_estimator"] == estimator
        assert seeds.loc[(arm.name, 1), "kl"] == pytest.approx(elbo["rate_nats"], rel=1e-12)
    for name in ("comparison.md", "comparison.png", "training.png", "what_z_keeps.png"):
        assert (results / name).exists(), name
