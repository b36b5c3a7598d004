"""The sweep engine: a spec's jobs, run to completion, surviving interruption.

:func:`run_job` is one job, start to end: train the model (resuming its checkpoint) or load
its ``weights``, then run each evaluation pass into its own run folder. Its state lives in
``JOB/job.json``, rewritten atomically after every step (``running`` with its pid, the passes
done, then ``complete`` or ``failed`` with the error), so a job killed at any moment, by
SIGINT or SIGKILL of the whole process group, resumes from its last checkpoint and its last
finished pass: nothing is lost and nothing is done twice.

:func:`run_sweep` runs the jobs that are not complete, a few at a time, through a launcher:

- ``local``: worker processes (spawned, one torch thread each by default) that die with the
  sweep;
- ``submitit``: submitit's executor, Slurm on a cluster or its local executor elsewhere. A job
  that times out or is preempted is requeued through submitit's checkpointing and resumes
  from disk.

A job that fails is recorded with its error (``job.json`` and ``error.txt``) and the sweep
goes on. When the jobs are done, :func:`collect` gathers every complete job's rows into the
sweep folder's own results table, each labelled with its arm, grid point and seed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.errors import BenchError
from benchmarks.results import make_frame, read_results, write_results
from benchmarks.runs import _alive, config_changes, make_folder, write_json
from benchmarks.spec import SweepJob

JOB_JSON = "job.json"
TRAIN = "train"
LAUNCHERS = ("local", "submitit")


# --- one job -------------------------------------------------------------------------------


class JobInUse(BenchError):
    """Another live process (a second sweep over the same folder) is running the job."""


def read_job(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / JOB_JSON
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except ValueError as err:
        raise BenchError(f"{path} is damaged ({err}); move the job folder away") from None
    return info if isinstance(info, dict) else None


def job_state(out: Path, job: SweepJob) -> str:
    """``pending``, ``started`` (a checkpoint or passes, no process), ``running``,
    ``complete``, ``failed``, or ``conflict`` (the folder holds another job's results)."""
    folder = Path(out) / job.folder
    info = read_job(folder)
    if info is None:
        return "started" if (folder / TRAIN).exists() else "pending"
    if info.get("job_id") != job.job_id:
        return "conflict"
    status = info.get("status")
    if status == "running":
        same_host = info.get("host") == socket.gethostname()
        return "running" if same_host and _alive(int(info.get("pid", 0))) else "started"
    return status if status in ("complete", "failed") else "started"


def training_progress(out: Path, job: SweepJob) -> tuple[int, int] | None:
    """(step reached, steps) of a job that trains, from its training log."""
    if not job.trains:
        return None
    log = Path(out) / job.folder / TRAIN / "train_log.jsonl"
    step = 0
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                step = max(step, int(json.loads(line)["step"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill
    return step, int(job.train_config.get("steps") or 0)


def run_job(
    job: SweepJob, out: Path, data_dir: Path | None = None, device: str = "cpu",
    compile: bool = False,
) -> str:  # fmt: skip
    """Run one job to completion (resuming what an earlier attempt left) and return its
    final status, ``complete`` or ``failed``. A folder holding another job is refused.
    ``compile`` runs the likelihood passes through ``torch.compile`` (a speed setting: not
    part of the job)."""
    folder = Path(out).resolve() / job.folder
    make_folder(folder)
    previous = read_job(folder)
    if previous is not None and previous.get("job_id") != job.job_id:
        changed = config_changes(previous.get("config") or {}, job.config)
        raise BenchError(
            f"{folder} holds another job (changed: {changed}); use another --out, or move it"
        )
    if previous is not None and previous.get("status") == "complete":
        return "complete"
    if (previous or {}).get("pid") != os.getpid() and job_state(out, job) == "running":
        raise JobInUse(f"{folder} is being run by another process (pid {previous.get('pid')})")
    info = {
        "job_id": job.job_id, "arm": job.arm, "dataset": job.dataset, "seed": job.seed,
        "point": dict(job.point), "label": job.label, "config": job.config,
        "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
        "started": _now(), "passes_done": (previous or {}).get("passes_done", []),
        "attempts": (previous or {}).get("attempts", 0) + 1,
        "earlier_wall_s": _earlier_wall(previous),
    }  # fmt: skip
    write_json(folder / JOB_JSON, info)
    (folder / "error.txt").unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        checkpoint = _model_checkpoint(job, folder, data_dir, device)
        for name, evaluation in job.passes.items():
            if name in info["passes_done"]:
                continue
            _evaluate(job, evaluation, checkpoint, folder / name, data_dir, device, compile)
            info["passes_done"] = [*info["passes_done"], name]
            write_json(folder / JOB_JSON, info)
        info["status"] = "complete"
    except (KeyboardInterrupt, SystemExit):  # SIGINT, or submitit requeueing a preempted job
        info["status"] = "interrupted"
        raise
    except Exception as err:  # recorded, and the sweep goes on
        info.update(status="failed", error=f"{type(err).__name__}: {' '.join(str(err).split())}")
        (folder / "error.txt").write_text(traceback.format_exc())
    finally:
        info.update(finished=_now(), wall_s=round(time.perf_counter() - start, 2))
        write_json(folder / JOB_JSON, info)
    return info["status"]


def _earlier_wall(previous: dict[str, Any] | None) -> float:
    """Wall time of the attempts before this one that recorded theirs (a SIGKILLed attempt
    cannot)."""
    if previous is None:
        return 0.0
    return round(float(previous.get("earlier_wall_s", 0.0)) + float(previous.get("wall_s", 0.0)), 2)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _model_checkpoint(
    job: SweepJob, folder: Path, data_dir: Path | None, device: str
) -> str | None:
    """The job's checkpoint: its ``weights`` (checked against the arm's config), or the one
    it trains into ``JOB/train``; None for a codec."""
    from benchmarks.model_runs import train_to
    from vlae_models.config import make_config
    from vlae_models.train import TrainConfig

    if job.codec is not None or job.experiment is not None:
        return None
    if job.weights is not None:
        _check_weights(job)
        return job.weights
    overrides = {**job.train_config, "progress": False, "device": device}
    config = make_config(TrainConfig, overrides, "training config")
    path = train_to(
        folder / TRAIN, job.model, job.dataset, model_config=job.model_config, config=config,
        split=job.train_split, data_dir=data_dir,
    )  # fmt: skip
    return str(path)


def _check_weights(job: SweepJob) -> None:
    """Weights named by a spec must be the arm's model with the arm's settings."""
    from vlae_models.checkpoint import read_meta
    from vlae_models.zoo import resolve

    meta = read_meta(resolve(job.weights))
    if meta.get("model") != job.model:
        raise BenchError(f"{job.weights} holds a {meta.get('model')}, not the arm's {job.model}")
    stored = {**(meta.get("model_config") or {}), **(meta.get("train_config") or {})}
    wanted = {**job.model_config, **{k: v for k, v in job.point if k not in job.model_config}}
    differ = [f"{k}: {stored.get(k)!r} != {v!r}" for k, v in wanted.items() if stored.get(k) != v]
    if differ:
        raise BenchError(f"{job.weights} was not trained as the arm says ({'; '.join(differ)})")


def method_spec(job: SweepJob, checkpoint: str | None) -> str:
    """The ``--codec`` string that evaluates the job's model or codec per image."""
    from vlae_models.compressai_nets import SIZES

    if job.codec is not None:
        return job.codec
    if job.model in SIZES:
        return f"{job.model}:{checkpoint}"
    return checkpoint if checkpoint.startswith("zoo:") else f"model:{checkpoint}"


def _evaluate(
    job: SweepJob, evaluation: dict[str, Any], checkpoint: str | None, out: Path,
    data_dir: Path | None, device: str, compile: bool = False,
) -> None:  # fmt: skip
    from benchmarks.evaluation import evaluate_to
    from benchmarks.model_runs import eval_to

    if evaluation["kind"] == "rd-theory":
        from benchmarks.rd_experiments import point_to

        point_to(out, job.experiment, job.train_config)
        return
    if evaluation["kind"] == "likelihood":
        eval_to(
            out, checkpoint, evaluation["dataset"], split=evaluation["split"],
            iw_samples=evaluation["iw_samples"], data_dir=data_dir,
            batch_size=evaluation["batch_size"], limit=evaluation["limit"], device=device,
            overwrite=True, progress=False,  # a pass not marked done is recomputed whole
            compile=compile,
        )  # fmt: skip
        return
    evaluate_to(
        out, evaluation["dataset"], [method_spec(job, checkpoint)], quality=job.quality,
        split=evaluation["split"], data_dir=data_dir, limit=evaluation["limit"], workers=1,
        device=device, progress=False, echo=lambda _: None,
    )  # fmt: skip


# --- the sweep -----------------------------------------------------------------------------


@dataclass
class SweepSummary:
    states: dict[str, str] = field(default_factory=dict)  # folder -> final state
    errors: dict[str, str] = field(default_factory=dict)  # folder -> error line

    @property
    def failed(self) -> list[str]:
        return [f for f, s in self.states.items() if s not in ("complete", "running")]

    @property
    def elsewhere(self) -> list[str]:
        """Jobs another process was running when this sweep ended."""
        return [f for f, s in self.states.items() if s == "running"]


def describe(jobs: Sequence[SweepJob], out: Path) -> pd.DataFrame:
    """The jobs and their state, for ``--dry-run`` and the progress line."""
    rows = []
    for job in jobs:
        progress = training_progress(out, job)
        rows.append({
            "job_id": job.job_id, "folder": job.folder, "arm": job.arm,
            "state": job_state(out, job),
            "trains": "—" if progress is None else f"{progress[0]}/{progress[1]} steps",
            "evaluates": ", ".join(job.passes) or "—",
        })  # fmt: skip
    return pd.DataFrame(rows)


def run_sweep(
    jobs: Sequence[SweepJob],
    out: Path,
    *,
    launcher: str = "local",
    workers: int = 1,
    threads: int = 1,
    data_dir: Path | None = None,
    device: str = "cpu",
    compile: bool = False,
    cluster_params: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    poll_s: float = 2.0,
) -> SweepSummary:
    """Run every job that is not complete, ``workers`` at a time, and report progress.
    ``compile`` runs the likelihood passes through ``torch.compile`` (see :func:`run_job`)."""
    if launcher not in LAUNCHERS:
        raise BenchError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    out = Path(out)
    make_folder(out)
    conflicts = [j.folder for j in jobs if job_state(out, j) == "conflict"]
    if conflicts:
        raise BenchError(
            f"{out / conflicts[0]} holds another job's results (the spec or profile changed); "
            "use another --out, or move those folders away"
        )
    states = {j.folder: job_state(out, j) for j in jobs}
    todo = [j for j in jobs if states[j.folder] not in ("complete", "running")]
    summary = SweepSummary({f: s for f, s in states.items() if s in ("complete", "running")})
    elsewhere = sum(s == "running" for s in states.values())
    note = f", {elsewhere} run by another process" if elsewhere else ""
    done = len(jobs) - len(todo) - elsewhere
    echo(f"{len(jobs)} jobs: {done} complete, {len(todo)} to run ({launcher}){note}")
    if todo:
        start = _local if launcher == "local" else _submitit
        start(todo, out, summary, workers=workers, threads=threads, data_dir=data_dir,
              device=device, compile=compile, cluster_params=cluster_params or {}, echo=echo,
              poll_s=poll_s)  # fmt: skip
    for job in todo:
        summary.states[job.folder] = state = job_state(out, job)
        if state not in ("complete", "running"):
            info = read_job(out / job.folder) or {}
            summary.errors.setdefault(job.folder, info.get("error", f"ended {state}"))
    return summary


class _Progress:
    """A status line when a job starts or ends, and every ``every_s`` seconds."""

    def __init__(self, jobs: Sequence[SweepJob], out: Path, echo: Callable[[str], None],
                 every_s: float = 30.0) -> None:  # fmt: skip
        self.jobs, self.out, self.echo, self.every_s = list(jobs), out, echo, every_s
        self.last, self.last_time = "", 0.0

    def show(self, running: Sequence[SweepJob]) -> None:
        states = [job_state(self.out, j) for j in self.jobs]
        done, failed = states.count("complete"), states.count("failed")
        line = f"[{done}/{len(self.jobs)} done, {len(running)} running, {failed} failed]"
        for job in running[:3]:
            progress = training_progress(self.out, job)
            if progress and progress[0] < progress[1]:
                line += f" {job.folder}: step {progress[0]}/{progress[1]}"
            else:
                passes = (read_job(self.out / job.folder) or {}).get("passes_done", [])
                todo = [p for p in job.passes if p not in passes]
                line += f" {job.folder}: {'evaluating ' + todo[0] if todo else 'finishing'}"
        counts = line.partition("]")[0]
        now = time.monotonic()
        if counts != self.last or now - self.last_time > self.every_s:
            self.echo(line)
            self.last, self.last_time = counts, now


def _worker_init(threads: int) -> None:
    import warnings

    from benchmarks.evaluation import _die_with_parent

    _die_with_parent()
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _local(jobs, out, summary, *, workers, threads, data_dir, device, compile, echo, poll_s,
           **_) -> None:  # fmt: skip
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # forking a torch process can hang
    progress = _Progress(jobs, out, echo)
    with ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=context, initializer=_worker_init,
        initargs=(threads,),
    ) as pool:  # fmt: skip
        pending: dict[Future, SweepJob] = {
            pool.submit(_pool_job, job, out, data_dir, device, compile): job for job in jobs
        }
        try:
            while pending:
                finished, _ = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    _record(summary, job, future, out, echo)
                running = [j for j in pending.values() if job_state(out, j) == "running"]
                progress.show(running)
        except KeyboardInterrupt:
            # The pool hands queued jobs to workers ahead of time: stop them, or a worker
            # whose job was interrupted would start the next one.
            pool.shutdown(wait=False, cancel_futures=True)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            echo("interrupted: finished jobs and checkpoints are kept; rerun to resume")
            raise


def _pool_job(job: SweepJob, out: Path, data_dir: Path | None, device: str, compile: bool) -> str:
    """:func:`run_job` in a pool worker, which ends on SIGINT once the job has recorded it,
    instead of taking the next job."""
    try:
        return run_job(job, out, data_dir, device, compile)
    except KeyboardInterrupt:
        os._exit(130)


def _record(summary: SweepSummary, job: SweepJob, future: Any, out: Path, echo: Callable) -> None:
    try:
        status = future.result()
    except JobInUse as err:  # another sweep took it meanwhile: not ours to report
        summary.states[job.folder] = "running"
        echo(f"skipped: {err}")
        return
    except Exception as err:  # the job could not even start (a conflict, a dead worker)
        status = "failed"
        summary.errors[job.folder] = f"{type(err).__name__}: {' '.join(str(err).split())}"
    summary.states[job.folder] = status
    if status != "complete":
        error = summary.errors.get(job.folder) or (read_job(out / job.folder) or {}).get("error")
        summary.errors[job.folder] = error or f"ended {status}"
        echo(f"failed: {job.folder}: {summary.errors[job.folder]}")


class SubmititJob:
    """What submitit runs: :func:`run_job`, requeued on timeout or preemption (its state is
    on disk, so the requeued job resumes where the first one stopped)."""

    def __init__(self, job: SweepJob, out: Path, data_dir: Path | None, device: str,
                 threads: int, compile: bool = False) -> None:  # fmt: skip
        self.job, self.out, self.data_dir, self.device = job, out, data_dir, device
        self.threads, self.compile = threads, compile

    def __call__(self) -> str:
        import torch

        torch.set_num_threads(self.threads)
        if _data_parallel_rank() != 0:  # a task beside rank 0: it trains, rank 0 does the rest
            if self.job.trains and job_state(self.out, self.job) != "complete":
                _model_checkpoint(self.job, self.out / self.job.folder, self.data_dir, self.device)
            return "complete"
        return run_job(self.job, self.out, self.data_dir, self.device, self.compile)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _data_parallel_rank() -> int:
    """In a submitit job of several tasks (``--cluster-param tasks_per_node=N``), export the
    torch.distributed variables (rank, world size, master address) and return this task's
    rank; the training then runs data-parallel (:mod:`vlae_models.distributed`). 0 otherwise."""
    import submitit
    from submitit.helpers import TorchDistributedEnvironment

    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return 0
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.global_rank


def executor_for(out: Path, threads: int, cluster_params: dict[str, Any]) -> Any:
    """submitit's AutoExecutor: Slurm where ``sbatch`` exists, else its local executor
    (``cluster=local`` forces it). ``cluster_params`` go to ``update_parameters``
    (``slurm_partition``, ``timeout_min``, ``gpus_per_node``, ``mem_gb``...)."""
    import submitit

    params = dict(cluster_params)
    cluster = params.pop("cluster", None)
    executor = submitit.AutoExecutor(folder=out / ".submitit" / "%j", cluster=cluster)
    executor.update_parameters(**{"cpus_per_task": threads, "timeout_min": 24 * 60, **params})
    return executor


def _submitit(jobs, out, summary, *, workers, threads, data_dir, device, compile,
              cluster_params, echo, poll_s) -> None:  # fmt: skip
    executor = executor_for(out.resolve(), threads, cluster_params)
    progress = _Progress(jobs, out, echo)
    queue, pending = list(jobs), {}
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                job = queue.pop(0)
                task = SubmititJob(job, out.resolve(), data_dir, device, threads, compile)
                submitted = executor.submit(task)
                echo(f"submitted {job.folder} as {executor.cluster} job {submitted.job_id}")
                pending[submitted] = job
            time.sleep(poll_s)
            for submitted in [s for s in pending if s.done()]:
                _record(summary, pending.pop(submitted), _SubmititResult(submitted), out, echo)
            progress.show([j for j in pending.values() if job_state(out, j) == "running"])
    except KeyboardInterrupt:
        for submitted in pending:
            submitted.cancel(check=False)
        echo("interrupted: submitted jobs cancelled; rerun to resume")
        raise


@dataclass
class _SubmititResult:
    job: Any

    def result(self) -> str:
        try:
            return self.job.result()
        except Exception as err:  # submitit wraps the job's own exception in its text
            last = str(err).strip().splitlines()[-1]
            raise (JobInUse if "being run by another process" in last else BenchError)(
                last
            ) from None


# --- the sweep's table ---------------------------------------------------------------------


def collect(jobs: Sequence[SweepJob], out: Path) -> pd.DataFrame:
    """Every complete job's rows (of the rate kinds each pass keeps), labelled: ``method``
    is the arm (plus any grid value the rows' own parameter does not show), ``model`` the
    registry name, ``arm``, ``seed``, ``sweep_job`` and ``pass``; written to
    ``OUT/results.parquet``."""
    frames = []
    for job in jobs:
        folder = Path(out) / job.folder
        if job_state(out, job) != "complete":
            continue
        for name, evaluation in job.passes.items():
            frame = read_results([folder / name]).drop(columns="source")
            if evaluation.get("rate_kinds"):
                frame = frame[frame["rate_kind"].isin(evaluation["rate_kinds"])]
            frame["model"] = frame["method"] if job.model is not None else pd.NA
            frame["method"] = _label(job, frame)
            frame["arm"], frame["pass"], frame["sweep_job"] = job.arm, name, job.job_id
            if job.seed is not None:
                frame["seed"] = str(job.seed)
            for key, value in job.point:
                frame[f"grid_{key}"] = value
            frames.append(frame)
    if not frames:
        return make_frame([])
    table = make_frame(pd.concat(frames, ignore_index=True).to_dict("records"))
    write_results(table, Path(out))
    return table


def _label(job: SweepJob, frame: pd.DataFrame) -> str:
    params = set(frame["param"].dropna())
    shown = [(k, v) for k, v in job.point if k not in params and not (k == "lmbda" and
             "lambda" in params)]  # fmt: skip
    return job.arm + "".join(f" {k}={v:g}" if isinstance(v, float | int) else f" {k}={v}"
                             for k, v in shown)  # fmt: skip


def finish_sweep(
    spec: Any, jobs: Sequence[SweepJob], out: Path, anchor: str | None = None
) -> tuple[pd.DataFrame, list[Path]]:
    """Collect the complete jobs' rows and render the report: (per-arm table, files)."""
    from benchmarks.report import arm_table, render_report

    frame = collect(jobs, out)
    if frame.empty:
        return pd.DataFrame(), [Path(out) / JOB_JSON]
    files = render_report(
        frame, Path(out), anchor=anchor, html=True, folders=[Path(out)],
        entropy=spec.data.entropy_nats,
    )  # fmt: skip
    return arm_table(frame), files
