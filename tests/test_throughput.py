"""``vlae-bench throughput``: phases timed alone into the tidy table, and its report.

No assertion here is about how fast anything is; they check what is measured and how."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.speed import throughput
from benchmarks.speed.throughput import _EntropyClock, resolve_target, time_calls
from tests.conftest import run_cli


def test_time_calls_times_each_call_and_its_memory_peak():
    def call():
        block = torch.ones(50 * 2**20 // 4)  # 50 MB, held for the sleep
        time.sleep(0.01)
        return block.sum()

    timing = time_calls(call, torch.device("cpu"), repeats=4, warmup=1)
    assert len(timing.seconds) == 4
    assert min(timing.seconds) >= 0.01  # a sleep lasts at least its time
    assert timing.mem_kind == "rss_peak"
    row = timing.row(items=2, pixels_per_item=10)
    assert row["images_per_s"] == pytest.approx(2 / np.median(timing.seconds))
    assert row["pixels_per_s"] == pytest.approx(10 * row["images_per_s"])
    assert row["p95_ms"] >= row["p50_ms"] >= row["min_ms"]
    assert math.isnan(row["entropy_share"])  # no entropy coder ran


def test_the_entropy_clock_times_the_coder_and_puts_it_back():
    from compressai import ans

    from vlae_models.entropy import CategoricalCoder

    original = ans.RansEncoder.__dict__["encode_with_indexes"]
    coder = CategoricalCoder(torch.tensor([0.5, 0.25, 0.25]))
    symbols = torch.randint(0, 3, (200_000,))
    clock = _EntropyClock()
    with clock.installed():
        began = time.perf_counter()
        coder.compress(symbols)  # nested: CategoricalCoder.compress -> RansEncoder, once
        whole = time.perf_counter() - began
    assert 0 < clock.elapsed <= whole
    assert clock.elapsed > 0.5 * whole  # nearly all of a bare coder call is the coder
    assert ans.RansEncoder.__dict__["encode_with_indexes"] is original


def test_throughput_command_times_a_model_and_a_codec(monkeypatch, capsys, tmp_path, kodak_dir):
    out = tmp_path / "tp"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "throughput", "zoo:beta-vae-binarized-mnist", "png",
        "--batch-size", "1,4", "--repeats", "3", "--warmup", "1", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stdout
    frame = pd.read_parquet(out / "results.parquet")
    model = frame[frame["method"] == "beta-vae"]
    assert set(model["phase"]) == {"train_step", "forward", "encode", "decode"}
    assert sorted(set(model["batch_size"])) == [1, 4]
    assert (model["dataset"] == "binarized-mnist").all()
    codec = frame[frame["method"] == "png"]
    assert set(codec["phase"]) == {"encode", "decode"} and (codec["dataset"] == "kodak").all()
    assert (codec["dtype"] == "uint8").all()
    assert np.allclose(frame["images_per_s"], frame["batch_size"] / (frame["p50_ms"] / 1e3))
    coded = model[model["phase"].isin(["encode", "decode"])]
    assert ((coded["entropy_share"] > 0) & (coded["entropy_share"] < 1)).all()
    assert model[model["phase"] == "forward"]["entropy_share"].isna().all()
    assert frame["cpu"].notna().all() and (frame["threads"] >= 1).all()
    report = (out / "report.md").read_text()
    assert "## Throughput (cpu" in report and "train_step" in report
    assert (out / "throughput_cpu.png").exists()
    # a second run on the same folder keeps the measured targets instead of re-timing them
    code, _, _ = run_cli(
        monkeypatch, capsys, "throughput", "zoo:beta-vae-binarized-mnist", "png",
        "--batch-size", "1,4", "--repeats", "3", "--warmup", "1", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), frame)


def test_an_autoregressive_model_has_a_sampling_phase(binarized_mnist_dir):
    target = resolve_target("pixelcnn")
    rows = throughput.measure(
        target, batch_sizes=(2,), repeats=1, warmup=0, phases=("forward", "sample")
    )  # fmt: skip
    assert [r["phase"] for r in rows] == ["forward", "sample"]
    assert all(r["batch_size"] == 2 and r["images_per_s"] > 0 for r in rows)
    assert [r["repeats"] for r in rows] == [1, 1]


def test_the_training_loop_and_a_dataloader_loop_are_timed_side_by_side(binarized_mnist_dir):
    rows = throughput.measure(
        resolve_target("beta-vae"), batch_sizes=(8,), repeats=2, warmup=1,
        phases=("train_loop", "dataloader_loop"),
    )  # fmt: skip
    assert [r["phase"] for r in rows] == ["train_loop", "dataloader_loop"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-model"], "unknown throughput target"),
        (["png", "--batch-size", "0"], "batch sizes must be positive"),
        (["png", "--phase", "fly"], "unknown phase"),
        (["beta-vae", "--dtype", "int4"], "dtype must be one of"),
        (["png", "--phase", "sample"], "png has none of the phases asked for (sample)"),
    ],
)
def test_bad_throughput_input_is_one_line(monkeypatch, capsys, tmp_path, args, message):
    code, _, stderr = run_cli(monkeypatch, capsys, "throughput", *args, "--out", str(tmp_path))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["throughput", "codecs"])
def test_a_device_this_machine_lacks_is_one_line(command, monkeypatch, capsys, tmp_path):
    import torch
    from conftest import assert_one_line_error, run_cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    first = ["jpeg=50"] if command == "throughput" else ["-c", "jpeg=50"]
    code, _, err = run_cli(monkeypatch, capsys, command, *first, "--device", "cuda", "--out",
                           str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "device 'cuda' requested but CUDA is not available")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("target", ["jpeg=50", "beta-vae"])
def test_a_batch_that_cannot_fit_is_refused_before_it_is_built(target, monkeypatch, capsys,
                                                               tmp_path):  # fmt: skip
    from conftest import assert_one_line_error, run_cli

    code, _, err = run_cli(monkeypatch, capsys, "throughput", target, "--batch-size",
                           "100000000", "--out", str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "batch size 100000000", "use a smaller --batch-size")
