"""``vlae-bench compare``: our measurements beside a paper's, from real evaluations.

The results tree is made by evaluating small (untrained) VLAEs and a PixelCNN on real
binarized-MNIST test images, so the numbers are the evaluator's own; every expected value
below is recomputed from those rows or from the spec's text, never typed in.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_cli
from typer.testing import CliRunner

import benchmarks
from benchmarks.cli import app
from benchmarks.datasets import load_array
from benchmarks.errors import BenchError
from benchmarks.results import make_frame, write_results
from benchmarks.studies.comparison import (
    check_expectations,
    comparison_table,
    draw_grids,
    load_spec,
    seed_results,
    training_logs,
    write_comparison,
)
from vlae_models.core import build
from vlae_models.evaluate import evaluate
from vlae_models.train import TrainConfig, train

SPEC = """
[spec]
name = "tiny"
title = "tiny comparison"
paper = "a paper"
[eval]
split = "test"
[expectations]
checks = ["local.nll < alone.nll", "local.kl < 1000", "never.kl < 1.0"]
[[arms]]
name = "local"
label = "small VLAE"
model = "vlae"
seeds = [1, 2]
[arms.paper.binarized-mnist]
nll = 79.03
kl = 13.3
[[arms]]
name = "alone"
model = "pixelcnn"
seeds = [1]
[arms.paper.dynamic-binarized-mnist]
nll = 87.55
kl = 0.0
[[arms]]
name = "never"
model = "vlae"
seeds = [1]
[references.binarized-mnist]
"IAF VAE" = 79.88
"""
SMALL_VLAE = dict(z_dim=4, encoder_width=8, cond_width=8, flow_hidden=16)


def _evaluate(model, pixels, folder: Path, **kwargs) -> dict:
    (row,) = evaluate(
        model, pixels, dataset="binarized-mnist", split="test", mutual_info=False,
        **kwargs,
    )  # fmt: skip
    write_results(make_frame([row]), folder)
    return row


@pytest.fixture(scope="module")
def tree(tmp_path_factory, binarized_mnist_dir) -> tuple[Path, Path, dict]:
    """results/<arm>-s<seed>/{train,elbo,iwae}/ as the sweep engine lays them out."""
    pixels = torch.from_numpy(
        load_array("binarized-mnist", "test", data_dir=binarized_mnist_dir.parent)[::1250]
    ).unsqueeze(1)  # 8 real test digits
    root = tmp_path_factory.mktemp("results")
    spec_path = root / "spec.toml"
    spec_path.write_text(SPEC)
    rows = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build("vlae", **SMALL_VLAE)
        folder = root / f"local-s{seed}"
        config = TrainConfig(steps=4, batch_size=4, log_every=2, progress=False, seed=seed)
        train(model, pixels, config=config, out_dir=folder / "train")
        model.eval()
        grids = {"out_dir": folder / "elbo"} if seed == 2 else {}  # with decoder draws
        rows[("local", seed, "elbo")] = _evaluate(model, pixels, folder / "elbo", **grids)
        rows[("local", seed, "iwae")] = _evaluate(model, pixels[:4], folder / "iwae", iw_samples=3)
    torch.manual_seed(3)
    rows[("alone", 1, "elbo")] = _evaluate(build("pixelcnn").eval(), pixels, root / "alone-s1")
    return root, spec_path, rows


def test_each_seed_takes_the_best_nll_and_the_whole_split_kl(tree) -> None:
    root, spec_path, rows = tree
    per_seed = seed_results(load_spec(spec_path), root, "binarized-mnist").set_index(
        ["arm", "seed"]
    )
    assert sorted(per_seed.index) == [("alone", 1), ("local", 1), ("local", 2)]
    for seed in (1, 2):
        got = per_seed.loc[("local", seed)]
        iwae, elbo = rows[("local", seed, "iwae")], rows[("local", seed, "elbo")]
        assert got["nll"] == iwae["nll_nats"] and got["nll_estimator"] == "iwae k=3"
        assert got["nll_examples"] == 4 and got["examples"] == 8
        assert got["kl"] == elbo["kl_nats"] and got["distortion"] == elbo["distortion_nats"]
        assert got["neg_elbo"] == elbo["neg_elbo_nats"]
        assert got["iwae_gap"] == pytest.approx(iwae["neg_elbo_nats"] - iwae["nll_nats"])
    alone = per_seed.loc[("alone", 1)]
    assert alone["nll_estimator"] == "exact" and alone["kl"] == 0.0
    assert alone["nll"] == rows[("alone", 1, "elbo")]["nll_nats"]


def test_table_puts_the_seed_mean_beside_the_papers_number(tree) -> None:
    root, spec_path, rows = tree
    spec = load_spec(spec_path)
    table = comparison_table(spec, seed_results(spec, root, "binarized-mnist"), "binarized-mnist")
    table = table.set_index("arm")
    raw = tomllib.loads(SPEC)["arms"]
    nlls = [rows[("local", s, "iwae")]["nll_nats"] for s in (1, 2)]
    local = table.loc["local"]
    assert local["nll"] == pytest.approx(sum(nlls) / 2)
    assert local["nll_sd"] == pytest.approx(pd.Series(nlls).std())
    assert local["paper_nll"] == raw[0]["paper"]["binarized-mnist"]["nll"]
    assert local["nll_minus_paper"] == pytest.approx(local["nll"] - local["paper_nll"])
    # the PixelCNN's paper number is for another dataset, and the table says which
    alone = table.loc["alone"]
    assert alone["paper_dataset"] == "dynamic-binarized-mnist"
    assert alone["paper_nll"] == raw[1]["paper"]["dynamic-binarized-mnist"]["nll"]
    never = table.loc["never"]
    assert never["seeds"] == 0 and math.isnan(never["nll"]) and pd.isna(never["paper_dataset"])


def test_expectations_are_checked_not_forced(tree) -> None:
    root, spec_path, _ = tree
    spec = load_spec(spec_path)
    table = comparison_table(spec, seed_results(spec, root, "binarized-mnist"), "binarized-mnist")
    checks = check_expectations(spec, table).set_index("expectation")
    by_arm = table.set_index("arm")
    first = checks.loc["local.nll < alone.nll"]
    assert first["left"] == by_arm.loc["local", "nll"]
    assert first["right"] == by_arm.loc["alone", "nll"]
    assert first["holds"] == (first["left"] < first["right"])
    assert checks.loc["local.kl < 1000", "holds"] is True
    assert checks.loc["never.kl < 1.0", "holds"] is None  # not run: neither true nor false


def test_cli_writes_the_report_figure_and_seed_table(tree, tmp_path) -> None:
    root, spec_path, _ = tree
    result = CliRunner().invoke(
        app, ["compare", str(spec_path), "--results", str(root), "--dataset", "binarized-mnist",
              "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = (tmp_path / "comparison.md").read_text()
    assert "small VLAE" in report and "IAF VAE 79.88" in report
    assert "Not run yet: never-s1." in report
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
    assert "![training](training.png)" in report and (tmp_path / "training.png").exists()
    # only seed 2 of one arm saved decoder draws: that grid, labelled with its seed
    grids = draw_grids(load_spec(spec_path), root, "draws_binarized-mnist_test.png")
    assert list(grids) == ["small VLAE (seed 2)"]
    assert "![what_z_keeps](what_z_keeps.png)" in report
    seeds = pd.read_csv(tmp_path / "comparison_seeds.csv")
    assert len(seeds) == 3


def test_training_logs_are_read_as_written(tree) -> None:
    root, spec_path, _ = tree
    logs = training_logs(load_spec(spec_path), root)
    assert set(zip(logs["arm"], logs["seed"], strict=True)) == {("local", 1), ("local", 2)}
    for seed in (1, 2):
        path = root / f"local-s{seed}" / "train" / "train_log.jsonl"
        written = [json.loads(line) for line in path.read_text().splitlines()]
        mine = logs[logs["seed"] == seed]
        assert list(mine["step"]) == [r["step"] for r in written if "rate" in r] == [2, 4]
        assert list(mine["rate"]) == [r["rate"] for r in written if "rate" in r]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace('"local.nll < alone.nll"', '"lokal.nll < alone.nll"'), "ARM.METRIC"),
        (lambda s: s.replace('"local.kl < 1000"', '"local.bpp < 1000"'), "ARM.METRIC"),
        (lambda s: s.replace('"local.kl < 1000"', '"local.kl ~ 1000"'), "expectation"),
        (lambda s: s.replace("[spec]", "[spec"), "not valid TOML"),
    ],
)
def test_bad_specs_are_refused_in_one_line(edit, message: str, tmp_path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(edit(SPEC))
    with pytest.raises(BenchError, match=message):
        load_spec(path)


def test_missing_results_exit_2_with_one_line(monkeypatch, capsys, tmp_path) -> None:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC)
    with pytest.raises(BenchError, match="no results for any arm"):
        write_comparison(spec_path, tmp_path, "binarized-mnist", tmp_path / "out")
    code, _, err = run_cli(
        monkeypatch, capsys, "compare", str(spec_path), "--results", str(tmp_path / "nope"),
        "--dataset", "binarized-mnist",
    )  # fmt: skip
    assert code == 2 and err.strip().count("\n") == 0 and "no results folder" in err


def test_the_shipped_vlae_spec_loads_with_its_expectations() -> None:
    path = Path(benchmarks.__file__).parent / "specs" / "vlae_mnist.toml"
    spec = load_spec(path)
    raw = tomllib.loads(path.read_text())
    assert [a.name for a in spec.arms] == [a["name"] for a in raw["arms"]]
    assert spec.expectations.checks == raw["expectations"]["checks"]
