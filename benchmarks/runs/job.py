"""One sweep job, start to end: train the model (resuming its checkpoint) or load its
``weights``, then run each evaluation pass into its own run folder.

Its state lives in ``JOB/job.json``, the job record (:mod:`benchmarks.runs.record`),
rewritten atomically after every step (``running`` with its pid, the passes done, then
``complete`` or ``failed`` with the error), so a job killed at any moment, by SIGINT or
SIGKILL of the whole process group, resumes from its last checkpoint and its last finished
pass: nothing is lost and nothing is done twice.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from baselines.method import MethodRequest
from benchmarks.errors import BenchError
from benchmarks.results import make_folder, read_record
from benchmarks.runs.codec_runs import evaluate_to
from benchmarks.runs.experiments import EXPERIMENTS
from benchmarks.runs.model_runs import eval_to, train_to
from benchmarks.runs.record import JobRecord, RecordConflict, RecordInUse
from benchmarks.runs.runtime import Runtime
from benchmarks.runs.spec import SweepJob
from vlae_models.checkpoint import read_meta
from vlae_models.config import make_config
from vlae_models.train import LOG_NAME, TrainConfig
from vlae_models.zoo import resolve

JOB_JSON = "job.json"
TRAIN = "train"


def read_job(folder: Path) -> dict[str, Any] | None:
    return read_record(Path(folder) / JOB_JSON)


def job_record(out: Path, job: SweepJob) -> JobRecord:
    return JobRecord(Path(out) / job.folder / JOB_JSON)


def job_state(out: Path, job: SweepJob) -> str:
    """``pending``, ``started`` (a checkpoint or passes, no process), ``running``,
    ``complete``, ``failed``, or ``conflict`` (the folder holds another job's results)."""
    state = job_record(out, job).state(job.job_id)
    if state == "pending":
        return "started" if (Path(out) / job.folder / TRAIN).exists() else "pending"
    return "started" if state == "stopped" else state


def training_progress(out: Path, job: SweepJob) -> tuple[int, int] | None:
    """(step reached, steps) of a job that trains, from its training log."""
    if not job.trains:
        return None
    log = Path(out) / job.folder / TRAIN / LOG_NAME
    step = 0
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                step = max(step, int(json.loads(line)["step"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill
    return step, int(job.train_config.get("steps") or 0)


def run_job(job: SweepJob, out: Path, runtime: Runtime = Runtime()) -> str:
    """Run one job to completion (resuming what an earlier attempt left) and return its
    final status, ``complete`` or ``failed``. A folder holding another job is refused."""
    folder = Path(out).resolve() / job.folder
    make_folder(folder)
    record = job_record(out, job)
    try:
        previous = record.check(job.job_id, job.config)
    except RecordConflict as err:
        raise BenchError(f"{folder} holds another job ({err.what}); use another --out, "
                         "or move it") from None  # fmt: skip
    if previous is not None and previous.get("status") == "complete":
        return "complete"
    fields = {
        "job_id": job.job_id, "kind": "sweep-job", "arm": job.arm, "dataset": job.dataset,
        "seed": job.seed, "point": dict(job.point), "label": job.label, "config": job.config,
        "passes_done": (previous or {}).get("passes_done", []),
    }  # fmt: skip
    (folder / "error.txt").unlink(missing_ok=True)
    try:
        with record.session(fields) as info:
            checkpoint = model_checkpoint(job, folder, runtime)
            for name, evaluation in job.passes.items():
                if name in info["passes_done"]:
                    continue
                _evaluate(job, evaluation, checkpoint, folder / name, runtime)
                info["passes_done"] = [*info["passes_done"], name]
                record.write(info)
    except RecordInUse:
        raise
    except Exception:  # recorded by the session, and the sweep goes on
        (folder / "error.txt").write_text(traceback.format_exc())
        return "failed"
    return "complete"


def model_checkpoint(job: SweepJob, folder: Path, runtime: Runtime) -> str | None:
    """The job's checkpoint: its ``weights`` (checked against the arm's config), or the one
    it trains into ``JOB/train``; None for a codec."""
    if job.codec is not None or job.experiment is not None:
        return None
    if job.weights is not None:
        _check_weights(job)
        return job.weights
    overrides = {**job.train_config, "progress": False, "device": runtime.device}
    config = make_config(TrainConfig, overrides, "training config")
    path = train_to(
        folder / TRAIN, job.model, job.dataset, model_config=job.model_config, config=config,
        split=job.train_split, data_dir=runtime.data_dir,
    )  # fmt: skip
    return str(path)


def _check_weights(job: SweepJob) -> None:
    """Weights named by a spec must be the arm's model with the arm's settings."""
    meta = read_meta(resolve(job.weights))
    if meta.get("model") != job.model:
        raise BenchError(f"{job.weights} holds a {meta.get('model')}, not the arm's {job.model}")
    stored = {**(meta.get("model_config") or {}), **(meta.get("train_config") or {})}
    wanted = {**job.model_config, **{k: v for k, v in job.point if k not in job.model_config}}
    differ = [f"{k}: {stored.get(k)!r} != {v!r}" for k, v in wanted.items() if stored.get(k) != v]
    if differ:
        raise BenchError(f"{job.weights} was not trained as the arm says ({'; '.join(differ)})")


def method_request(job: SweepJob, checkpoint: str | None) -> MethodRequest:
    """The method that evaluates the job's model or codec per image."""
    if job.codec is not None:
        return MethodRequest.parse(job.codec)
    if job.model_is_codec:  # a CompressAI net: its own method, given the checkpoint
        return MethodRequest(job.model, checkpoint)
    if checkpoint.startswith("zoo:"):
        return MethodRequest("zoo", checkpoint.removeprefix("zoo:"))
    return MethodRequest("model", checkpoint)


def _evaluate(
    job: SweepJob, evaluation: dict[str, Any], checkpoint: str | None, out: Path,
    runtime: Runtime,
) -> None:  # fmt: skip
    if evaluation["kind"] == "experiment":
        EXPERIMENTS[job.experiment].run(out, job.train_config)
        return
    if evaluation["kind"] == "likelihood":
        eval_to(
            out, checkpoint, evaluation["dataset"], split=evaluation["split"],
            iw_samples=evaluation["iw_samples"], data_dir=runtime.data_dir,
            batch_size=evaluation["batch_size"], limit=evaluation["limit"],
            device=runtime.device, overwrite=True, progress=False,  # an unfinished pass reruns
            compile=runtime.compile,
        )  # fmt: skip
        return
    evaluate_to(
        out, evaluation["dataset"], [method_request(job, checkpoint)], quality=job.quality,
        split=evaluation["split"], data_dir=runtime.data_dir, limit=evaluation["limit"],
        workers=1, device=runtime.device, metrics=evaluation.get("metrics"), progress=False,
        echo=lambda _: None,
    )  # fmt: skip
