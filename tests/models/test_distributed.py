"""Data-parallel training (DDP over gloo, two CPU processes launched by torchrun) against one
process on the same global batch, and a killed DDP run resumed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from benchmarks.datasets import load_array
from vlae_models.checkpoint import load, read_meta
from vlae_models.distributed import Group
from vlae_models.evaluate import evaluate
from vlae_models.train import EpochBatches

# A small VLAE: free bits on the batch-mean rate, the AF prior, the local PixelCNN.
SMALL = [
    "z_dim=8",
    "encoder_width=16",
    "cond_width=16",
    "flow_hidden=32",
    "pixelcnn_filters=4",
    "pixelcnn_res_blocks=1",
]
RUN = ["batch_size=16", "log_every=1", "checkpoint_every=5", "progress=false"]
STEPS = 20


def _command(out, steps: int, procs: int, evaluate: bool = False) -> list[str]:
    sets = [arg for pair in SMALL + RUN for arg in ("--set", pair)]
    held_out = ["--eval-split", "valid"] if evaluate else []
    cli = ["-m", "benchmarks", "train", "vlae", "--dataset", "binarized-mnist", *held_out,
           "--steps", str(steps), *sets, "--out", str(out)]  # fmt: skip
    if procs == 1:
        return [sys.executable, *cli]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, f"--nproc_per_node={procs}", *cli]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(out, steps: int, procs: int, evaluate: bool = False) -> None:
    command = _command(out, steps, procs, evaluate)
    done = subprocess.run(command, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _steps(log: list[dict]) -> dict[int, dict]:
    return {r["step"]: r for r in log if "loss" in r}


@pytest.fixture(scope="module")
def single(tmp_path_factory, binarized_mnist_dir):
    out = tmp_path_factory.mktemp("ddp") / "single"
    _train(out, STEPS, 1)
    return out


@pytest.fixture(scope="module")
def two(tmp_path_factory, binarized_mnist_dir):
    """Two gloo processes under torchrun, killed mid-run (every process, as a lost node
    would be) and resumed by a second launch: what the tests below compare with one process.
    Returns the run folder and the step the first launch had checkpointed when killed."""
    out = tmp_path_factory.mktemp("ddp") / "two"
    job = subprocess.Popen(
        _command(out, STEPS, 2, evaluate=True), env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ckpt = out / "checkpoint.safetensors"
        if ckpt.exists() and read_meta(ckpt)["step"] >= 5:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the DDP run wrote no checkpoint in time")
    # torchrun puts each worker in a session of its own: kill them all
    for proc in [*psutil.Process(job.pid).children(recursive=True), psutil.Process(job.pid)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # ended on its own meanwhile
            proc.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = read_meta(out / "checkpoint.safetensors")["step"]
    _train(out, STEPS, 2, evaluate=True)
    return out, killed_at


def test_ranks_take_distinct_shards_that_make_up_the_global_batch():
    batches = EpochBatches(n=100, batch_size=16, seed=3)
    for step in (0, 5, batches.per_epoch, batches.per_epoch + 1):  # across an epoch boundary
        batch = batches.indices(step)
        shards = [Group(rank, 4).shard(batch) for rank in range(4)]
        assert all(len(s) == 4 for s in shards)
        assert torch.equal(torch.cat(shards), batch)
        assert len(set(torch.cat(shards).tolist())) == 16
    # the sampler's epoch advances: epoch 1 is another permutation than epoch 0
    assert not torch.equal(batches.indices(0), batches.indices(batches.per_epoch))


def test_two_gloo_processes_follow_the_single_process_trajectory(single, two):
    """On the killed-and-resumed run of ``two``: its steps before the kill and after the
    resume both follow one process's."""
    two, _ = two
    by_one, by_two = _steps(_log(single)), _steps(_log(two))
    assert sorted(by_one) == sorted(by_two) == list(range(1, STEPS + 1))
    for step, want in by_one.items():
        for key in ("loss", "rate", "distortion", "grad_norm"):
            assert by_two[step][key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), (step, key)
    # the weights the two runs end with agree to float tolerance
    model_one, _ = load(single / "checkpoint.safetensors")
    model_two, meta = load(two / "checkpoint.safetensors")
    weights_two = model_two.state_dict()
    for name, value in model_one.state_dict().items():
        torch.testing.assert_close(weights_two[name], value, rtol=1e-3, atol=1e-5, msg=name)
    # the effective batch is stated
    run = json.loads((two / "run.json").read_text())
    assert (run["world_size"], run["shard_batch"], run["train_config"]["batch_size"]) == (2, 8, 16)
    assert (meta["world_size"], meta["shard_batch"]) == (2, 8)


def test_evaluation_is_all_reduced_over_the_ranks_shards(two, binarized_mnist_dir):
    """The end-of-training eval of a DDP run is the image-weighted mean of what each rank
    measured on its shard (every second image), not rank 0's shard alone (the evaluation of
    the resumed launch of ``two``)."""
    two, _ = two
    (final,) = [r["eval"] for r in _log(two) if "eval" in r]
    model, _ = load(two / "checkpoint.safetensors")
    array = load_array("binarized-mnist", "valid", data_dir=binarized_mnist_dir.parent)
    valid = torch.from_numpy(array).unsqueeze(1)
    parts = [evaluate(model, valid[r::2], mutual_info=False)[0] for r in (0, 1)]
    expected = sum(p["nll_nats"] * p["n_examples"] for p in parts) / len(valid)
    assert final["kl:nll_nats"] == pytest.approx(expected, rel=1e-6)
    assert final["kl:nll_nats"] != pytest.approx(parts[0]["nll_nats"], rel=1e-6)


def test_a_killed_ddp_run_resumes_to_the_single_process_numbers(single, two):
    """The run of ``two`` was killed part-way; its second launch resumed it: nothing logged
    twice, nothing lost, and the trajectory above is the single process's."""
    out, killed_at = two
    assert killed_at < STEPS, "the run finished before it could be killed; use more steps"
    steps = [r["step"] for r in _log(out) if "loss" in r]
    assert steps == list(range(1, STEPS + 1))
    by_one, resumed = _steps(_log(single)), _steps(_log(out))
    for step, want in by_one.items():
        assert resumed[step]["loss"] == pytest.approx(want["loss"], rel=1e-4), step
