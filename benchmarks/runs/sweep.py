"""The sweep engine: a spec's jobs, run to completion, surviving interruption.

Each job is :func:`benchmarks.runs.job.run_job`: train or load, then evaluate, resumable at
any moment. :func:`run_sweep` runs the jobs that are not complete, a few at a time, through
a launcher (:mod:`benchmarks.runs.launchers`): local worker processes, or submitit (Slurm on
a cluster, its local executor elsewhere). A job that fails is recorded with its error
(``job.json`` and ``error.txt``) and the sweep goes on. When the jobs are done,
:func:`collect` gathers every complete job's rows into the sweep folder's own results table,
each labelled with its arm, grid point and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.errors import BenchError
from benchmarks.report import arm_table, render_report
from benchmarks.results import make_folder, make_frame, merge_attrs, read_results, write_results
from benchmarks.runs.job import JOB_JSON, job_state, read_job, training_progress
from benchmarks.runs.launchers import LAUNCHERS, SweepSummary
from benchmarks.runs.runtime import Runtime
from benchmarks.runs.spec import Spec, SweepJob, expand, load_spec
from vlae_models.train import resolve_device

# --- the sweep -----------------------------------------------------------------------------


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
    runtime: Runtime = Runtime(),
    cluster_params: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    poll_s: float = 2.0,
) -> SweepSummary:
    """Run every job that is not complete, ``workers`` at a time, and report progress.
    ``runtime`` holds what changes no number: data folder, device, threads, compile; the
    workers import this process's plugins again (registered classes included)."""
    if launcher not in LAUNCHERS:
        raise BenchError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    resolve_device(runtime.device)  # a device this machine lacks: one line, before any job
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
        LAUNCHERS[launcher](
            todo, out, summary, workers=workers, runtime=runtime.with_plugins(),
            cluster_params=cluster_params or {}, echo=echo, poll_s=poll_s,
        )  # fmt: skip
    for job in todo:
        summary.states[job.folder] = state = job_state(out, job)
        if state not in ("complete", "running"):
            info = read_job(out / job.folder) or {}
            summary.errors.setdefault(job.folder, info.get("error", f"ended {state}"))
    return summary


# --- the sweep's table ---------------------------------------------------------------------


def collect(jobs: Sequence[SweepJob], out: Path, notes: Sequence[str] = ()) -> pd.DataFrame:
    """Every complete job's rows (of the rate kinds each pass keeps), labelled: ``method``
    is the arm (plus any grid value the rows' own parameter does not show), ``model`` the
    registry name, ``arm``, ``seed``, ``sweep_job`` and ``pass``; written to
    ``OUT/results.parquet``."""
    frames, attrs = [], {}
    for job in jobs:
        folder = Path(out) / job.folder
        if job_state(out, job) != "complete":
            continue
        for name, evaluation in job.passes.items():
            frame = read_results([folder / name]).drop(columns="source")
            attrs = merge_attrs(attrs, frame.attrs)
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
    table.attrs = {**attrs, **({"notes": list(notes)} if notes else {})}
    write_results(table, Path(out))
    return table


def _label(job: SweepJob, frame: pd.DataFrame) -> str:
    params = set(frame["param"].dropna())
    shown = [(k, v) for k, v in job.point if k not in params and not (k == "lmbda" and
             "lambda" in params)]  # fmt: skip
    return job.arm + "".join(f" {k}={v:g}" if isinstance(v, float | int) else f" {k}={v}"
                             for k, v in shown)  # fmt: skip


def finish_sweep(
    spec: Spec, jobs: Sequence[SweepJob], out: Path, anchor: str | None = None
) -> tuple[pd.DataFrame, list[Path]]:
    """Collect the complete jobs' rows and render the report: (per-arm table, files). The
    spec's ``note`` travels with the table, so a re-rendered report shows it too."""
    frame = collect(jobs, out, notes=[spec.spec.note] if spec.spec.note else [])
    if frame.empty:
        return pd.DataFrame(), [Path(out) / JOB_JSON]
    files = render_report(
        frame, Path(out), anchor=anchor, html=True, folders=[Path(out)],
        entropy=spec.data.entropy_nats,
    )  # fmt: skip
    return arm_table(frame), files


@dataclass
class SweepOutcome:
    """What :func:`sweep_to` did: the jobs' states, the per-arm table and the files written."""

    jobs: list[SweepJob]
    summary: SweepSummary
    table: pd.DataFrame
    files: list[Path]


def sweep_to(
    spec_path: Path | str,
    out: Path,
    *,
    profile: str | None = None,
    only: Sequence[str] | None = None,
    launcher: str = "local",
    workers: int = 1,
    runtime: Runtime = Runtime(),
    cluster_params: dict[str, Any] | None = None,
    anchor: str | None = None,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """A spec, start to end: load and check it (its plugins included), run every job that is
    not complete, collect the rows and render the report. Rerunning resumes."""
    spec = load_spec(spec_path)
    jobs = expand(spec, profile, list(only) if only else None)
    summary = run_sweep(
        jobs, out, launcher=launcher, workers=workers, runtime=runtime,
        cluster_params=cluster_params, echo=echo,
    )  # fmt: skip
    table, files = finish_sweep(spec, jobs, out, anchor=anchor)
    return SweepOutcome(jobs, summary, table, files)
