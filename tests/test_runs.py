"""The run store and the faults a user met: each ends in one line and loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli

from benchmarks.errors import BenchError
from benchmarks.results import read_results
from benchmarks.runs.store import Job, RunStore, job_id


def codecs_args(data: Path, out: Path, *more: str) -> list[str]:
    return ["codecs", "--dataset", "kodak", "--data-dir", str(data), "-c", "jpeg",
            "--quality", "40,80", "--workers", "1", "--out", str(out), *more]  # fmt: skip


def test_job_ids_are_stable_and_tell_configs_apart():
    a = job_id("codecs", {"dataset": "kodak", "settings": [1, 2]})
    assert a == job_id("codecs", {"settings": [1, 2], "dataset": "kodak"})  # key order
    assert a != job_id("codecs", {"dataset": "kodak", "settings": [1, 3]})
    assert a != job_id("eval", {"dataset": "kodak", "settings": [1, 2]})


def test_out_under_a_regular_file_is_one_line(monkeypatch, capsys, kodak3, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(
        monkeypatch, capsys, *codecs_args(kodak3, blocker / "run", "--limit", "3")
    )
    assert_one_line_error(code, err, "is a file")
    assert blocker.read_text() == "not a folder"
    assert (
        run_cli(monkeypatch, capsys, *codecs_args(kodak3, tmp_path / "ok", "--limit", "1"))[0] == 0
    )
    code, _, err = run_cli(monkeypatch, capsys, "report", str(tmp_path / "ok"),
                           "--out", str(blocker / "report"))  # fmt: skip
    assert_one_line_error(code, err, "is a file")


def test_another_commands_folder_is_refused(monkeypatch, capsys, kodak3, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "2"))
    assert code == 0, err
    before = (out / "results.parquet").read_bytes()
    code, _, err = run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "3"))
    assert_one_line_error(code, err, "different command", "limit: 2 -> 3", "--overwrite")
    assert (out / "results.parquet").read_bytes() == before  # nothing lost
    code, _, err = run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "3",
                                                             "--overwrite"))  # fmt: skip
    assert code == 0, err
    assert pd.read_parquet(out / "results.parquet")["image"].nunique() == 3


def test_a_flipped_bit_fails_the_checksum(monkeypatch, capsys, kodak3, tmp_path):
    out = tmp_path / "run"
    assert run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "1"))[0] == 0
    data = bytearray((out / "results.parquet").read_bytes())
    data[len(data) // 3] ^= 0x10
    (out / "results.parquet").write_bytes(bytes(data))
    code, _, err = run_cli(monkeypatch, capsys, "report", str(out))
    assert_one_line_error(code, err, "fails its checksum")
    (out / "results.csv").write_text((out / "results.csv").read_text().replace("jpeg", "jpxg"))
    with pytest.raises(BenchError, match="fails its checksum"):
        read_results([out / "results.csv"])


def test_the_csv_beside_the_parquet_is_verified_too(monkeypatch, capsys, kodak3, tmp_path):
    """A flipped bit in results.csv (what people open) fails the report, though the Parquet it
    reads is intact."""
    out = tmp_path / "run"
    assert run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "1"))[0] == 0
    data = bytearray((out / "results.csv").read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / "results.csv").write_bytes(bytes(data))
    code, _, err = run_cli(monkeypatch, capsys, "report", str(out))
    assert_one_line_error(code, err, "results.csv fails its checksum")


def test_a_deleted_checksum_file_is_refused_or_rendered_marked_unverified(
    monkeypatch, capsys, kodak3, tmp_path
):
    out = tmp_path / "run"
    assert run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "1"))[0] == 0
    (out / "results.sha256").unlink()
    code, _, err = run_cli(monkeypatch, capsys, "report", str(out))
    assert_one_line_error(code, err, "results.sha256 is missing", "--unverified")
    code, _, err = run_cli(monkeypatch, capsys, "report", str(out), "--unverified")
    assert code == 0 and "has no checksums" in err
    assert "**Unverified:**" in (out / "report.md").read_text()


def test_overlapping_runs_are_refused_and_other_image_sets_kept_apart(
    monkeypatch, capsys, kodak3, tmp_path
):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert run_cli(monkeypatch, capsys, *codecs_args(kodak3, a, "--limit", "3"))[0] == 0
    assert run_cli(monkeypatch, capsys, *codecs_args(kodak3, b, "--limit", "2"))[0] == 0
    code, _, err = run_cli(monkeypatch, capsys, "report", str(a), str(b), "--out", str(c))
    assert_one_line_error(code, err, "stored 2 times")  # kodim01/02 would count twice
    webp = [
        "codecs",
        "--dataset",
        "kodak",
        "--data-dir",
        str(kodak3),
        "-c",
        "webp",
        "--quality",
        "50",
        "--limit",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "w"),
    ]
    assert run_cli(monkeypatch, capsys, *webp)[0] == 0
    code, _, err = run_cli(monkeypatch, capsys, "report", str(a), str(tmp_path / "w"),
                           "--out", str(c))  # fmt: skip
    assert code == 0, err
    text = (c / "report.md").read_text()
    assert "kodak, 3 images" in text and "kodak, 2 images" in text  # two sections, not one


def test_a_value_or_codec_given_twice_runs_once(monkeypatch, capsys, kodak3, tmp_path):
    args = [
        "codecs",
        "--dataset",
        "kodak",
        "--data-dir",
        str(kodak3),
        "-c",
        "jpeg",
        "-c",
        "jpeg",
        "--quality",
        "50,50",
        "--limit",
        "1",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "o"),
    ]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "asked twice" in err
    assert len(pd.read_parquet(tmp_path / "o" / "results.parquet")) == 1


def test_a_run_that_died_is_noticed_and_continued(monkeypatch, capsys, kodak3, tmp_path):
    out = tmp_path / "run"
    assert run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "2"))[0] == 0
    info = json.loads((out / "run.json").read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info.update(status="running", pid=dead.pid)
    del info["wall_s"]
    (out / "run.json").write_text(json.dumps(info))
    code, _, err = run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "2"))
    assert code == 0 and "ended without finishing" in err and "resuming: 4 rows" in err
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_a_folder_in_use_is_refused(tmp_path):
    job = Job("codecs", {"x": 1})
    store = RunStore(tmp_path, job)
    with store.running(), pytest.raises(BenchError, match="in use"):
        info = json.loads((tmp_path / "run.json").read_text())
        info["pid"] = os.getppid()  # a live process other than this one
        (tmp_path / "run.json").write_text(json.dumps(info))
        RunStore(tmp_path, job)


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(p) for p in task.read_text().split()}
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_kill_9_of_the_main_process_leaves_no_workers(kodak_dir, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "benchmarks.cli", "codecs", "--dataset", "kodak",
            "--data-dir", str(kodak_dir.parent), "--limit", "8", "-c", "jpeg",
            "--quality", "10:90:20", "-c", "png", "--workers", "2", "--out", str(out)]  # fmt: skip
    main = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 60, set()
    while time.time() < deadline and not (out / "results.parquet").exists():
        workers |= _children(main.pid)
        time.sleep(0.2)
    assert (out / "results.parquet").exists(), "no rows written within a minute"
    workers |= _children(main.pid)
    main.send_signal(signal.SIGKILL)
    main.wait()
    time.sleep(2.0)
    alive = [p for p in workers if Path(f"/proc/{p}").exists() and
             "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]  # fmt: skip
    assert workers and not alive, f"orphaned workers: {alive}"
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # killed: stale
    kept = len(pd.read_parquet(out / "results.parquet"))
    rerun = subprocess.run(args, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "ended without finishing" in rerun.stderr and f"resuming: {kept} rows" in rerun.stderr
    final = pd.read_parquet(out / "results.parquet")
    assert len(final) == 8 * 6 and final.groupby(["method", "value", "image"]).size().max() == 1


def test_option_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--limit", "0", "--out", str(tmp_path))
    assert_one_line_error(code, err, "--limit")
    code, _, err = run_cli(monkeypatch, capsys, "train", "beta-vae", "--dataset", "mnist",
                           "--steps", "1", "--set", "lr=abc", "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(code, err, "lr", "valid number", "abc")


def _full_disk_after(monkeypatch, module, name: str, writes: int) -> None:
    """The disk fills up after ``writes`` writes of files called ``name``."""
    import errno

    from vlae_models import files

    real, count = files._fill, {"n": 0}

    def fill(tmp, content):
        if tmp.name.startswith(f".{name}."):
            count["n"] += 1
            if count["n"] > writes:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(tmp, content)

    monkeypatch.setattr(files, "_fill", fill)


def test_a_full_disk_during_codecs_is_one_line_and_keeps_the_rows(
    monkeypatch, capsys, kodak3, tmp_path
):
    import benchmarks.runs.store as store

    out = tmp_path / "run"
    real_start = store.RunStore.__post_init__

    def flush_after_every_task(self):
        real_start(self)
        self.flush_every = -1.0

    monkeypatch.setattr(store.RunStore, "__post_init__", flush_after_every_task)
    _full_disk_after(monkeypatch, None, "results.parquet", 2)
    code, _, err = run_cli(monkeypatch, capsys, *codecs_args(kodak3, out, "--limit", "3"))
    assert_one_line_error(code, err, "the disk is full", "results.parquet", "rerun")
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "disk is full" in record["error"]
    kept = read_results([out])  # the last complete write, intact and verified
    assert len(kept) == 2 * len(kept["value"].unique())


def test_a_full_disk_during_training_is_one_line_and_keeps_the_checkpoint(
    monkeypatch, capsys, binarized_mnist_dir, tmp_path
):
    out = tmp_path / "train"
    _full_disk_after(monkeypatch, None, "checkpoint.safetensors", 1)
    code, _, err = run_cli(monkeypatch, capsys, "train", "beta-vae", "--dataset",
                           "binarized-mnist", "--data-dir", str(binarized_mnist_dir.parent),
                           "--steps", "4", "--set", "checkpoint_every=2", "--set", "width=8",
                           "--set", "batch_size=8", "--set", "progress=false",
                           "--out", str(out))  # fmt: skip
    assert_one_line_error(code, err, "the disk is full", "checkpoint.safetensors")
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    from vlae_models.checkpoint import read_meta

    assert read_meta(out / "checkpoint.safetensors")["step"] == 2  # the last one written
