"""The example plugin (examples/plugin), installed as a user installs a package, walked
through as its README does: its entries are listed, its model trains through the one loop
and gets −ELBO and IWAE, its codec and model sit beside gzip and a zoo model in one table
with its metric as a column, and a spec with its model as an arm runs with two workers.
Listing runs the installed command in a process of its own; the heavier steps run the same
command in this process, to spare a torch start-up each."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import struct
import subprocess
import sys
import zlib
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import cli
from benchmarks.datasets import load_items

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"
VLAE_BENCH = str(Path(sys.executable).parent / "vlae-bench")
DIST = "vlae-bench-example-plugin"
IN_PROCESS = True  # False when the plugin was installed by this session (fixture below)


@pytest.fixture(scope="module")
def installed() -> str:
    """The example plugin, installed in the test environment (``nox -s tests`` installs it;
    elsewhere this does: ``pip install -e examples/plugin``)."""
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        # installed now: this process's registries and import paths predate it, so every
        # step runs the command in a process of its own
        global IN_PROCESS
        IN_PROCESS = False
        isolation = [] if importlib.util.find_spec("setuptools") is None else [
            "--no-build-isolation"
        ]  # fmt: skip
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation,
                        "-e", str(EXAMPLE)], check=True, timeout=600)  # fmt: skip
        importlib.invalidate_caches()
        return metadata.version(DIST)


def vlae_bench(*args: str, data: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The installed command, in a process of its own, as a user runs it."""
    env = {**os.environ, "VLAE_BENCH_DATA": str(data), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([VLAE_BENCH, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def in_process(*args: str, data: Path, cwd: Path) -> str:
    """The same command in this process (the plugin's entry points load here alike): what
    the heavier steps use, to spare a torch start-up each. Returns its stdout."""
    if not IN_PROCESS:
        return vlae_bench(*args, data=data, cwd=cwd).stdout
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLAE_BENCH_DATA", str(data))
        patch.chdir(cwd)
        patch.setattr(sys, "argv", ["vlae-bench", *args])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as stop:
                assert not stop.code, err.getvalue()[-3000:]
    return out.getvalue()


@pytest.fixture(scope="module")
def trained(installed, tmp_path_factory, binarized_mnist_dir) -> tuple[Path, Path]:
    """The README's first step: train the plugin's model through the one training loop."""
    work = tmp_path_factory.mktemp("example")
    in_process("train", "mlp-vae", "--dataset", "binarized-mnist", "--steps", "400",
               "--set", "batch_size=64", "--set", "progress=false", "--out", "runs/mlp",
               data=binarized_mnist_dir.parent, cwd=work)  # fmt: skip
    return work, work / "runs" / "mlp" / "checkpoint.safetensors"


def test_its_entries_are_listed_with_where_they_come_from(installed, tmp_path, data_root):
    listing = vlae_bench("codecs", "--list", data=data_root, cwd=tmp_path).stdout
    origin = f"plugin {DIST} {installed}"
    line = next(row for row in listing.splitlines() if row.startswith("zlib-bits"))
    assert "lossless" in line and origin in line and "level=0..9" in line
    line = next(row for row in listing.splitlines() if row.startswith("foreground-iou"))
    assert "opt-in" in line and "foreground_iou (higher is better)" in line and origin in line
    models = vlae_bench("models", data=data_root, cwd=tmp_path).stdout
    assert "mlp-vae" in models and "latent_dim=16, hidden=256" in models


def test_its_model_gets_elbo_and_iwae(trained, binarized_mnist_dir):
    work, checkpoint = trained
    shown = in_process("eval", str(checkpoint), "--dataset", "binarized-mnist", "--limit", "200",
                       "--iw-samples", "64", "--out", "runs/mlp-eval", "--no-progress",
                       data=binarized_mnist_dir.parent, cwd=work)  # fmt: skip
    assert "estimator=iwae" in shown
    row = pd.read_parquet(work / "runs" / "mlp-eval" / "results.parquet").iloc[0]
    assert row["method"] == "mlp-vae" and row["n_examples"] == 200
    assert row["nll_nats"] <= row["neg_elbo_nats"]  # IWAE is the tighter bound
    assert 60 < row["nll_nats"] < 250  # a binarized digit, in nats, after 400 steps


def test_its_codec_and_model_sit_beside_builtins_in_one_table(trained, binarized_mnist_dir):
    work, checkpoint = trained
    in_process("codecs", "--dataset", "binarized-mnist", "--limit", "40", "-c", "zlib-bits",
               "-c", "gzip", "-c", f"model:{checkpoint}", "-c", "zoo:beta-vae-binarized-mnist",
               "--metrics", "foreground-iou", "--workers", "2", "--out", "runs/table",
               data=binarized_mnist_dir.parent, cwd=work)  # fmt: skip
    rows = pd.read_parquet(work / "runs" / "table" / "results.parquet")
    kinds = rows.groupby("method")["rate_kind"].agg(set).to_dict()
    assert kinds == {"zlib-bits": {"coded"}, "gzip": {"coded"}, "mlp-vae": {"coded", "kl"},
                     "beta-vae": {"coded", "kl"}}  # fmt: skip
    assert rows["foreground_iou"].notna().all()
    lossless = rows[rows["method"].isin(["zlib-bits", "gzip"])]
    assert (lossless["bit_error_rate"] == 0).all() and (lossless["foreground_iou"] == 1).all()
    model = rows[rows["method"] == "mlp-vae"]
    assert model["foreground_iou"].between(0, 1).all() and model["foreground_iou"].mean() > 0.4
    assert (model["bit_error_rate"] > 0).all()
    # the codec's bytes are what its README says: a 5-byte header and zlib of the packed bits
    root = binarized_mnist_dir.parent
    found = load_items("binarized-mnist", split="test", limit=40, data_dir=root)
    items = {item.name: item.pixels for item in found}
    for row in rows[rows["method"] == "zlib-bits"].itertuples():
        image = items[row.image]
        expected = 5 + len(zlib.compress(np.packbits(image).tobytes(), 9))
        assert row.n_bytes == expected and struct.calcsize(">HHB") == 5
    report = (work / "runs" / "table" / "report.md").read_text()
    assert "foreground_iou (↑)" in report and "rd_foreground_iou_binarized-mnist.png" in report


def test_a_spec_with_its_model_as_an_arm_runs_with_two_workers(installed, tmp_path,
                                                               binarized_mnist_dir):  # fmt: skip
    spec = EXAMPLE / "spec.toml"
    in_process("sweep", str(spec), "--out", "sweep", "-j", "2", "--profile", "smoke",
               data=binarized_mnist_dir.parent, cwd=tmp_path)  # fmt: skip
    table = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert set(table["arm"]) == {"mlp", "zlib-bits", "gzip"}
    assert set(table[table["arm"] == "mlp"]["grid_beta"]) == {0.5, 1.0}
    assert table.loc[table["pass"] == "codec", "foreground_iou"].notna().all()
    split = table[(table["arm"] == "mlp") & (table["image"] == "__all__")]
    assert set(split["estimator"]) == {"iwae"} and split["nll_nats"].notna().all()


def test_its_codec_is_fuzzed_and_timed(installed, tmp_path, binarized_mnist_dir):
    root = binarized_mnist_dir.parent
    fuzzed = in_process("fuzz", "-c", "zlib-bits", "--dataset", "binarized-mnist", "--streams",
                        "120", data=root, cwd=tmp_path)  # fmt: skip
    assert "120 streams" in fuzzed
    timed = in_process("throughput", "zlib-bits", "mlp-vae", "--dataset", "binarized-mnist",
                       "--out", "t", "--batch-size", "4", "--repeats", "2", "--warmup", "0",
                       data=root, cwd=tmp_path)  # fmt: skip
    assert "zlib-bits" in timed and "mlp-vae" in timed and "train_step" in timed
