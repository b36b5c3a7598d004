"""The sweep engine on real data: jobs run, resume after a kill, fail alone, and run through
submitit's local executor; the committed ablation is what the spec's ``cpu`` profile runs."""

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
from conftest import run_cli

import benchmarks
from benchmarks.results import read_results
from benchmarks.runs.job import job_state, read_job, run_job
from benchmarks.runs.launchers import SubmititJob, executor_for
from benchmarks.runs.runtime import Runtime
from benchmarks.runs.spec import expand, load_spec
from benchmarks.runs.sweep import collect, run_sweep, sweep_to

REPO = Path(__file__).resolve().parents[1]
SPECS = Path(benchmarks.__file__).parent / "specs"
VLAE_BENCH = str(Path(sys.executable).parent / "vlae-bench")
SWEEP = """
[spec]
name = "kill-test"
[data]
datasets = ["binarized-mnist"]
[train]
steps = STEPS
batch_size = 32
checkpoint_every = 10
log_every = 5
[eval.passes.elbo]
limit = 64
[eval.passes.codec]
kind = "codec"
limit = 6
[[arms]]
name = "bvae"
model = "beta-vae"
set = { latent_dim = 4, width = 16 }
grid = { beta = [0.5, 2.0] }
[[arms]]
name = "png"
codec = "png"
"""
NUMBERS = ["bpp", "rate_nats", "distortion_nats", "nll_nats", "kl_nats", "bit_error_rate"]


def _spec(tmp_path: Path, steps: int, extra: str = "") -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.replace("STEPS", str(steps)) + extra)
    return path


def _sweep(spec: Path, out: Path, *more: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [VLAE_BENCH, "sweep", str(spec), "--out", str(out), *more],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def _logged_steps(folder: Path) -> list[int]:
    lines = (folder / "train" / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def _numbers(out: Path) -> pd.DataFrame:
    table = read_results([out])
    keys = ["method", "value", "image", "rate_kind", "estimator"]
    return table.sort_values(keys, ignore_index=True)[keys + NUMBERS]


def test_dry_run_lists_every_job_with_its_id_and_state(
    tmp_path, binarized_mnist_dir, monkeypatch, capsys
):
    spec = _spec(tmp_path, 20)
    code, out, _ = run_cli(monkeypatch, capsys, "sweep", str(spec), "--out", str(tmp_path / "o"),
                           "--dry-run")  # fmt: skip
    assert code == 0
    jobs = expand(load_spec(spec))
    for job in jobs:
        assert job.job_id in out and job.folder in out
    assert out.count("| pending") == len(jobs) == 3
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_a_sweep_killed_mid_job_resumes_to_the_same_numbers(tmp_path, binarized_mnist_dir):
    """SIGKILL of the whole process group while the first job trains, then SIGINT while a
    later job evaluates; each rerun resumes. The end state equals an uninterrupted sweep's:
    nothing lost (every job complete), nothing twice (no duplicate rows or log steps)."""
    env = {**os.environ, "VLAE_BENCH_DATA": str(binarized_mnist_dir.parent)}
    spec, killed, straight = _spec(tmp_path, 150), tmp_path / "killed", tmp_path / "straight"
    first = killed / "bvae-beta0.5-s1"
    sweep = _sweep(spec, killed, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = first / "train" / "train_log.jsonl"
        if log.exists() and (first / "train" / "checkpoint.safetensors").exists():
            steps = [json.loads(x)["step"] for x in log.read_text().splitlines() if x.endswith("}")]
            if steps and 30 <= steps[-1] < 150:
                break
        time.sleep(0.05)
    else:
        pytest.fail("the first job never reached mid-training")
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait(30)
    for _ in range(100):  # the killed worker is gone once it is reaped
        if job_state(killed, expand(load_spec(spec))[0]) == "started":
            break
        time.sleep(0.05)
    assert job_state(killed, expand(load_spec(spec))[0]) == "started"  # died while running

    second = killed / "bvae-beta2-s1"
    sweep = _sweep(spec, killed, env=env, start_new_session=True)
    while time.monotonic() < deadline + 120:  # interrupt while the second job evaluates
        info = read_job(second) or {}
        if info.get("passes_done") == ["elbo"] or sweep.poll() is not None:
            break
        time.sleep(0.02)
    os.killpg(sweep.pid, signal.SIGINT)
    sweep.wait(60)  # promptly: the worker ends with its job, and starts no other
    if sweep.returncode != 0:
        assert read_job(second)["status"] in ("interrupted", "running")
        assert read_job(killed / "png") is None  # queued, never started

    done = subprocess.run([VLAE_BENCH, "sweep", str(spec), "--out", str(killed)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    runtime = Runtime(data_dir=binarized_mnist_dir.parent)  # the rest in this process
    assert not sweep_to(spec, straight, runtime=runtime, echo=lambda _: None).summary.failed

    pd.testing.assert_frame_equal(_numbers(killed), _numbers(straight))
    assert read_job(first)["attempts"] >= 2
    steps = _logged_steps(first)
    assert steps == sorted(set(steps)) and steps[-1] == 150  # resumed, no step logged twice
    said: list[str] = []
    sweep_to(spec, killed, runtime=runtime, echo=said.append)
    assert any("3 complete, 0 to run" in line for line in said)  # a finished sweep reruns nothing


def test_two_sweeps_over_one_folder_share_the_jobs(tmp_path, binarized_mnist_dir):
    """A second sweep skips the jobs a live first one is running; neither counts them as
    failures, and every job runs once."""
    env = {**os.environ, "VLAE_BENCH_DATA": str(binarized_mnist_dir.parent)}
    spec, out = _spec(tmp_path, 150), tmp_path / "shared"
    jobs = expand(load_spec(spec))
    first = _sweep(spec, out, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while job_state(out, jobs[0]) != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    lines: list[str] = []
    runtime = Runtime(data_dir=binarized_mnist_dir.parent)
    summary = run_sweep(jobs, out, runtime=runtime, echo=lines.append)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert not summary.failed and "1 run by another process" in lines[0]
    assert all(job_state(out, j) == "complete" for j in jobs)
    assert all(read_job(out / j.folder)["attempts"] == 1 for j in jobs)  # each ran once


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(
    tmp_path, binarized_mnist_dir, monkeypatch, capsys
):
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    broken = (
        '[[arms]]\nname = "broken"\ncodec = "png"\n[arms.eval.codec]\ndataset = "folder:/no/such"\n'
    )
    spec = _spec(tmp_path, 10, broken)
    out = tmp_path / "o"
    code, stdout, err = run_cli(monkeypatch, capsys, "sweep", str(spec), "--out", str(out))
    assert code == 1, err
    info = read_job(out / "broken")
    assert info["status"] == "failed" and "/no/such" in info["error"]
    assert "failed: broken:" in err and (out / "broken" / "error.txt").exists()
    others = [j for j in expand(load_spec(spec)) if j.arm != "broken"]
    assert all(job_state(out, j) == "complete" for j in others)
    table = read_results([out])
    assert set(table["arm"]) == {"bvae", "png"}  # the complete jobs' rows were collected


def test_a_changed_spec_does_not_reuse_another_jobs_folder(
    tmp_path, binarized_mnist_dir, monkeypatch, capsys
):
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    out = tmp_path / "o"
    assert run_cli(monkeypatch, capsys, "sweep", str(_spec(tmp_path, 10)), "--out", str(out),
                   "--only", "png")[0] == 0  # fmt: skip
    changed = _spec(tmp_path, 10).read_text().replace("limit = 6", "limit = 5")
    (tmp_path / "sweep.toml").write_text(changed)
    code, _, err = run_cli(monkeypatch, capsys, "sweep", str(tmp_path / "sweep.toml"), "--out",
                           str(out), "--only", "png")  # fmt: skip
    assert code == 2 and "holds another job's results" in err and len(err.splitlines()) == 1
    assert read_job(out / "png")["status"] == "complete"  # untouched


def test_submitit_local_executor_runs_jobs_and_requeues_a_preempted_one(
    tmp_path, binarized_mnist_dir, monkeypatch
):
    """Jobs go through submitit's own executor (its local one here, Slurm on a cluster); a
    job preempted mid-training is requeued through ``checkpoint()`` and resumes from disk."""
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    spec = load_spec(_spec(tmp_path, 150))
    jobs, out = expand(spec), tmp_path / "o"
    local = {"cluster": "local"}
    summary = run_sweep(jobs[2:], out, launcher="submitit", cluster_params=local,
                        echo=lambda _: None, poll_s=0.5)  # fmt: skip
    assert not summary.failed and (out / ".submitit").is_dir()

    executor = executor_for(out.resolve(), 1, {"cluster": "local"})
    submitted = executor.submit(SubmititJob(jobs[0], out.resolve()))
    folder = out / jobs[0].folder
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (folder / "train" / "checkpoint.safetensors").exists():
            break
        time.sleep(0.05)
    os.kill(_child(int(submitted.job_id)), signal.SIGUSR2)  # preemption, as Slurm signals it
    assert submitted.result() == "complete"
    assert read_job(folder)["attempts"] == 2  # ran, was preempted, was requeued
    steps = _logged_steps(folder)
    assert steps == sorted(set(steps)) and steps[-1] == 150
    table = collect([jobs[0], jobs[2]], out)
    assert set(table["arm"]) == {"bvae", "png"} and table["sweep_job"].nunique() == 2


def test_submitit_starts_a_data_parallel_job_of_two_tasks(
    tmp_path, binarized_mnist_dir, monkeypatch
):
    """``tasks_per_node=2``: the job's training runs on two gloo ranks (rank 0 records the job
    and evaluates) and follows the single-process run of the same job."""
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    (job, *_) = expand(load_spec(_spec(tmp_path, 20)))
    one = run_sweep([job], tmp_path / "one", echo=lambda _: None)
    two_tasks = {"cluster": "local", "tasks_per_node": 2}
    two = run_sweep([job], tmp_path / "two", launcher="submitit", echo=lambda _: None,
                    cluster_params=two_tasks, poll_s=0.5)  # fmt: skip
    assert not one.failed and not two.failed
    run = json.loads((tmp_path / "two" / job.folder / "train" / "run.json").read_text())
    assert (run["world_size"], run["shard_batch"]) == (2, 16)
    logs = [(tmp_path / name / job.folder / "train" / "train_log.jsonl").read_text().splitlines()
            for name in ("one", "two")]  # fmt: skip
    for a, b in zip(*logs, strict=True):
        a, b = json.loads(a), json.loads(b)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), a["step"]
    assert job_state(tmp_path / "two", job) == "complete"


@pytest.mark.slow
def test_a_compiled_sweep_gives_the_eager_numbers(tmp_path, binarized_mnist_dir, monkeypatch):
    """``--compile`` is a speed setting: the same job id, the same numbers to float tolerance,
    and the rows of its likelihood pass say they were compiled."""
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    extra = "\n[eval.passes.iwae]\niw_samples = 16\nlimit = 32\n"
    (job, *_) = expand(load_spec(_spec(tmp_path, 20, extra)))
    for name, compile in (("eager", False), ("compiled", True)):
        assert run_job(job, tmp_path / name, Runtime(compile=compile)) == "complete"
    eager, compiled = (
        read_results([tmp_path / n / job.folder / "iwae"]) for n in ("eager", "compiled")
    )
    assert compiled["compiled"].all() and "compiled" not in eager
    assert compiled["nll_nats"].iloc[0] == pytest.approx(eager["nll_nats"].iloc[0], rel=1e-5)


def _child(pid: int) -> int:
    """The task process submitit's local controller ``pid`` started (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            return int(stat.parent.name)
    raise AssertionError(f"submitit job {pid} has no task process")


def test_the_cpu_profile_resolves_to_the_committed_ablation_runs():
    """``vlae-bench sweep vlae_mnist.toml --profile cpu`` is what made results/vlae-ablation:
    every job's model, training config, split and evaluations equal the committed runs'."""
    from vlae_models.config import field_defaults, make_config
    from vlae_models.train import TrainConfig

    jobs = expand(load_spec(SPECS / "vlae_mnist.toml"), "cpu")
    results = REPO / "results" / "vlae-ablation"
    assert sorted(j.folder for j in jobs) == sorted(p.parent.name for p in results.glob("*/train"))
    cadence = {"progress", "device"}
    for job in jobs:
        ran = json.loads((results / job.folder / "train" / "run.json").read_text())
        resolved = vars(make_config(TrainConfig, job.train_config, "train"))
        ran_config = {**field_defaults(TrainConfig), **ran["train_config"]}  # fields added since
        assert {k: v for k, v in resolved.items() if k not in cadence} == {
            k: v for k, v in ran_config.items() if k not in cadence
        }, job.folder
        assert (ran["model"], ran["model_config"], ran["split"]) == (
            job.model,
            job.model_config,
            job.train_split,
        )
        for name, evaluation in job.passes.items():
            command = json.loads((results / job.folder / name / "run.json").read_text())["command"]
            assert f"--split {evaluation['split']}" in command
            assert (f"--iw-samples {evaluation['iw_samples']}" in command) == (
                evaluation["iw_samples"] > 0
            )
            assert (f"--limit {evaluation['limit']}" in command) == (
                evaluation["limit"] is not None
            )


COMMITTED_SWEEPS = [  # (results folder, spec, profile): each made by `vlae-bench sweep`
    ("beta-sweep-mnist", "beta_sweep_mnist.toml", "cpu"),
    ("kodak-rd", "kodak_rd.toml", None),
    ("demo", "demo.toml", None),
]


@pytest.mark.parametrize(("folder", "spec", "profile"), COMMITTED_SWEEPS)
def test_committed_sweeps_are_what_their_spec_expands_to(folder, spec, profile):
    """Every job of the spec is complete in the committed folder under the same id: the
    spec, the profile and the id's definition still describe the committed numbers."""
    out = REPO / "results" / folder
    jobs = expand(load_spec(SPECS / spec), profile)
    for job in jobs:
        info = read_job(out / job.folder)
        assert info is not None, job.folder
        assert (info["job_id"], info["status"]) == (job.job_id, "complete"), job.folder
    table = read_results([out])
    assert set(table["sweep_job"]) == {j.job_id for j in jobs}


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        (
            'model = "beta-vae"\nweights = "zoo:hvae-photos-1"',
            "holds a hvae, not the arm's beta-vae",
        ),
        (
            'model = "beta-vae"\nweights = "zoo:beta-vae-photos-1"\ngrid = { latent_dim = [32] }',
            "was not trained as the arm says (latent_dim: 64 != 32)",
        ),
    ],
)
def test_weights_that_are_not_the_arms_model_fail_the_job(tmp_path, arm, message):
    path = tmp_path / "spec.toml"
    path.write_text(
        '[spec]\nname = "w"\n[data]\ndatasets = ["embedded:crop=64"]\n'
        '[eval.passes.codec]\nkind = "codec"\n[[arms]]\nname = "a"\n' + arm + "\n"
    )
    (job,) = expand(load_spec(path))
    assert run_job(job, tmp_path / "o") == "failed"
    assert message in read_job(tmp_path / "o" / job.folder)["error"]


TWO_MODELS = """
[spec]
name = "new-models"
[data]
datasets = ["binarized-mnist"]
[train]
steps = 3
batch_size = 16
checkpoint_every = 3
[eval.passes.elbo]
limit = 8
[eval.passes.codec]
kind = "codec"
limit = 2
[[arms]]
name = "hvlae"
model = "hierarchical-vlae"
set = { width = 16, z_channels = 2, flow_hidden = 32, pixelcnn_filters = 8, pixelcnn_layers = 2 }
[[arms]]
name = "vq-ar"
model = "vq-vae-ar"
set = { prior_filters = 8, prior_layers = 2, prior_res_blocks = 0 }
"""


def test_the_hierarchical_vlae_and_the_vq_prior_run_in_a_sweep(tmp_path, binarized_mnist_dir):
    """Both of issue 23's models train, evaluate and code real streams as sweep arms; the
    shipped spec expands to the committed runs' models and budgets."""
    spec = tmp_path / "two.toml"
    spec.write_text(TWO_MODELS)
    runtime = Runtime(data_dir=binarized_mnist_dir.parent)
    outcome = sweep_to(spec, tmp_path / "out", runtime=runtime, echo=lambda _: None)
    assert not outcome.summary.failed
    table = read_results([tmp_path / "out"])
    hvlae = table[table["arm"] == "hvlae"]
    assert {"kl_nats_l0", "kl_nats_l1"} <= set(hvlae.dropna(axis=1, how="all").columns)
    coded = table[(table["rate_kind"] == "coded") & (table["image"] != "__all__")]
    assert sorted(coded["arm"].value_counts().to_dict().items()) == [("hvlae", 2), ("vq-ar", 2)]
    assert (coded["bpp"] > 0).all()
    vq = table[(table["arm"] == "vq-ar") & (table["image"] == "__all__")]
    assert set(vq["rate_kind"]) == {"fixed", "prior"}
    shipped = {j.model: j.train_config["steps"]
               for j in expand(load_spec(SPECS / "hierarchy_mnist.toml"), "cpu")}  # fmt: skip
    assert shipped == {"hierarchical-vlae": 3500, "vq-vae-ar": 8000}
