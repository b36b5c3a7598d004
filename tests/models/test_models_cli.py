"""The `models`, `train` and `eval` commands on a bare Typer app, with real binarized MNIST."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from benchmarks.cli import app as cli_app
from benchmarks.errors import BenchError
from vlae_models.config import parse_overrides, parse_value
from vlae_models.core import ModelError
from vlae_models.train import TrainConfig
from vlae_models.vae import BetaVAEConfig


@pytest.fixture()
def app() -> typer.Typer:
    return cli_app


def test_models_lists_the_registry(app: typer.Typer):
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("beta-vae", "vq-vae", "hvae"):
        assert name in result.output
    assert "likelihood='bernoulli'" in result.output


def test_train_then_eval(app: typer.Typer, data_root: Path, tmp_path: Path):
    require = data_root / "binarized_mnist"
    if not require.is_dir():
        pytest.skip("binarized_mnist missing")
    run, out = tmp_path / "run", tmp_path / "eval"
    common = ["--data-dir", str(data_root)]
    train = [
        "train", "beta-vae", "--dataset", "binarized-mnist", "--beta", "0.5", "--steps", "4",
        "--set", "width=16", "--set", "latent_dim=4", "--set", "batch_size=16",
        "--set", "progress=false", "--out", str(run), *common,
    ]  # fmt: skip
    result = CliRunner().invoke(app, train)
    assert result.exit_code == 0, result.output
    ckpt = run / "checkpoint.safetensors"
    assert ckpt.exists() and json.loads((run / "run.json").read_text())["status"] == "complete"

    evaluate = [
        "eval", str(ckpt), "--dataset", "binarized-mnist", "--split", "test", "--iw-samples", "3",
        "--limit", "64", "--no-progress", "--out", str(out), *common,
    ]  # fmt: skip
    for _ in range(2):  # evaluating twice replaces the rows instead of duplicating them
        result = CliRunner().invoke(app, evaluate)
        assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["method"], row["param"], row["value"], row["rate_kind"]) == (
        "beta-vae",
        "beta",
        0.5,
        "kl",
    )
    assert row["estimator"] == "iwae" and row["iw_samples"] == 3 and row["weights"] == "ema"
    assert row["n_examples"] == 64
    assert json.loads(row["config"])["latent_dim"] == 4
    assert (out / "recon_binarized-mnist_test.png").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    report = (out / "report.md").read_text()
    assert "binarized-mnist / test: models" in report and "beta-vae" in report


def test_resumed_training_counts_the_earlier_sessions_wall_time(
    app: typer.Typer, data_root: Path, tmp_path: Path
):
    if not (data_root / "binarized_mnist").is_dir():
        pytest.skip("binarized_mnist missing")
    run = tmp_path / "run"

    def train(steps: int) -> dict:
        args = [
            "train", "beta-vae", "--dataset", "binarized-mnist", "--steps", str(steps),
            "--set", "width=8", "--set", "latent_dim=2", "--set", "batch_size=8",
            "--set", "progress=false", "--out", str(run), "--data-dir", str(data_root),
        ]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads((run / "run.json").read_text())

    first = train(2)
    assert "earlier_wall_s" not in first
    second = train(4)  # resumes a finished session: its recorded wall time carries over
    assert second["earlier_wall_s"] == pytest.approx(first["wall_s"], abs=0.01)
    # a killed session leaves run.json "running" with no wall time: count its start to the
    # checkpoint's last write
    ckpt_time = (run / "checkpoint.safetensors").stat().st_mtime
    killed = {**second, "status": "running", "earlier_wall_s": 7.0}
    killed["started"] = datetime.fromtimestamp(ckpt_time - 100.0, UTC).isoformat()
    del killed["wall_s"]
    (run / "run.json").write_text(json.dumps(killed))
    third = train(6)
    assert third["earlier_wall_s"] == pytest.approx(107.0, abs=0.01)
    (run / "run.json").write_text("{not json")
    result = CliRunner().invoke(
        app, ["train", "beta-vae", "--dataset", "binarized-mnist", "--steps", "8",
              "--out", str(run), "--data-dir", str(data_root)],
    )  # fmt: skip
    assert isinstance(result.exception, BenchError) and "--fresh" in str(result.exception)


def test_train_on_8bit_data_with_bernoulli_explains(
    app: typer.Typer, data_root: Path, tmp_path: Path
):
    if not (data_root / "mnist").is_dir():
        pytest.skip("mnist missing")
    args = ["train", "beta-vae", "--dataset", "mnist", "--steps", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_root)])
    assert isinstance(result.exception, ModelError)
    assert "--set likelihood=logistic-mixture" in str(result.exception)


def test_parse_overrides():
    model, train = parse_overrides(
        ["latent_dim=8", "likelihood=gaussian", "gaussian_std=1", "lr=1e-3", "bf16=true",
         "grad_clip=none", "train.seed=4"],
        BetaVAEConfig, TrainConfig,
    )  # fmt: skip
    assert model == {"latent_dim": 8, "likelihood": "gaussian", "gaussian_std": 1.0}
    assert train == {"lr": 1e-3, "bf16": True, "grad_clip": None, "seed": 4}
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("adam") == "adam"
    for bad, match in [
        ("depth=3", "unknown config field"),
        ("latent_dim=2.5", "latent_dim: Input should be a valid integer"),
        ("bf16=yes", "bf16: Input should be a valid boolean"),
        ("lr=abc", "lr: Input should be a valid number, got 'abc'"),
        ("novalue", "key=value"),
        ("model.lr=1", "unknown model field"),
    ]:
        with pytest.raises(ModelError, match=match):
            parse_overrides([bad], BetaVAEConfig, TrainConfig)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "lr=nan"], "lr: Input should be a finite number, got nan"),
        (["--set", "lr=inf"], "lr: Input should be a finite number, got inf"),
        (["--beta", "-1"], "beta: Input should be greater than or equal to 0, got -1"),
        (["--set", "ema_decay=1.5"], "ema_decay: Input should be less than 1, got 1.5"),
        (["--set", "optimizer=sgd"], "optimizer: Input should be 'adam', 'adamax' or 'adamw'"),
    ],
)
def test_out_of_range_training_fields_are_one_line(monkeypatch, capsys, tmp_path, args, fragment):
    from conftest import assert_one_line_error, run_cli

    code, _, err = run_cli(monkeypatch, capsys, "train", "beta-vae", "--dataset",
                           "binarized-mnist", "--steps", "2", "--out", str(tmp_path / "r"),
                           *args)  # fmt: skip
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists()  # refused before anything was written
