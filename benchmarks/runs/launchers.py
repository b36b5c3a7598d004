"""Launchers: how a sweep's jobs reach processes.

- ``local``: a pool of spawned worker processes (one torch thread each by default) that die
  with the sweep; on SIGINT the queued jobs are cancelled and the running ones record it.
- ``submitit``: submitit's executor, Slurm where ``sbatch`` exists and its local executor
  elsewhere. A job that times out or is preempted is requeued through submitit's
  checkpointing and resumes from disk.

Either way a job is :func:`benchmarks.runs.sweep.run_job` in a fresh process, which first
imports the plugins of the sweep's :class:`~benchmarks.runs.runtime.Runtime` again.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.helpers import DelayedSubmission, TorchDistributedEnvironment

from benchmarks.errors import BenchError
from benchmarks.evaluation.workers import (
    check_started,
    die_with_parent,
    restore_plugins,
    spawnable_main,
)
from benchmarks.runs.job import (
    job_state,
    model_checkpoint,
    read_job,
    run_job,
    training_progress,
)
from benchmarks.runs.record import RecordInUse
from benchmarks.runs.runtime import Runtime
from benchmarks.runs.spec import SweepJob


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


class Progress:
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


def prepare_process(runtime: Runtime) -> None:
    """What a job's process does first: torch threads, and the sweep's plugins."""
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

    torch.set_num_threads(runtime.threads)
    os.environ["OMP_NUM_THREADS"] = str(runtime.threads)
    restore_plugins(runtime.plugins)


def _worker_init(runtime: Runtime) -> None:
    die_with_parent()
    prepare_process(runtime)


def local(
    jobs: Sequence[SweepJob], out: Path, summary: SweepSummary, *, workers: int,
    runtime: Runtime, echo: Callable[[str], None], poll_s: float, **_: Any,
) -> None:  # fmt: skip
    context = multiprocessing.get_context("spawn")  # forking a torch process can hang
    progress = Progress(jobs, out, echo)
    with spawnable_main(), ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=context, initializer=_worker_init,
        initargs=(runtime,),
    ) as pool:  # fmt: skip
        pending: dict[Future, SweepJob] = {
            pool.submit(_pool_job, job, out, runtime): job for job in jobs
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


def _pool_job(job: SweepJob, out: Path, runtime: Runtime) -> str:
    """:func:`run_job` in a pool worker, which ends on SIGINT once the job has recorded it,
    instead of taking the next job."""
    check_started()
    try:
        return run_job(job, out, runtime)
    except KeyboardInterrupt:
        os._exit(130)


def _record(summary: SweepSummary, job: SweepJob, future: Any, out: Path, echo: Callable) -> None:
    try:
        status = future.result()
    except RecordInUse as err:  # another sweep took it meanwhile: not ours to report
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

    def __init__(self, job: SweepJob, out: Path, runtime: Runtime = Runtime()) -> None:
        self.job, self.out, self.runtime = job, out, runtime

    def __call__(self) -> str:
        prepare_process(self.runtime)
        check_started()
        if _data_parallel_rank() != 0:  # a task beside rank 0: it trains, rank 0 does the rest
            if self.job.trains and job_state(self.out, self.job) != "complete":
                model_checkpoint(self.job, self.out / self.job.folder, self.runtime)
            return "complete"
        return run_job(self.job, self.out, self.runtime)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:

        return DelayedSubmission(self, *args, **kwargs)


def _data_parallel_rank() -> int:
    """In a submitit job of several tasks (``--cluster-param tasks_per_node=N``), export the
    torch.distributed variables (rank, world size, master address) and return this task's
    rank; the training then runs data-parallel (:mod:`vlae_models.distributed`). 0 otherwise."""

    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return 0
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.global_rank


def executor_for(out: Path, threads: int, cluster_params: dict[str, Any]) -> Any:
    """submitit's AutoExecutor: Slurm where ``sbatch`` exists, else its local executor
    (``cluster=local`` forces it). ``cluster_params`` go to ``update_parameters``
    (``slurm_partition``, ``timeout_min``, ``gpus_per_node``, ``mem_gb``...)."""

    params = dict(cluster_params)
    cluster = params.pop("cluster", None)
    executor = submitit.AutoExecutor(folder=out / ".submitit" / "%j", cluster=cluster)
    executor.update_parameters(**{"cpus_per_task": threads, "timeout_min": 24 * 60, **params})
    return executor


def submitit_launcher(jobs: Sequence[SweepJob], out: Path, summary: SweepSummary, *, workers: int,
             runtime: Runtime, cluster_params: dict[str, Any], echo: Callable[[str], None],
             poll_s: float) -> None:  # fmt: skip
    executor = executor_for(out.resolve(), runtime.threads, cluster_params)
    progress = Progress(jobs, out, echo)
    queue, pending = list(jobs), {}
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                job = queue.pop(0)
                submitted = executor.submit(SubmititJob(job, out.resolve(), runtime))
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
            raise (RecordInUse if "in use by another" in last else BenchError)(last) from None


LAUNCHERS = {"local": local, "submitit": submitit_launcher}
