"""The run store: the one place that opens an output folder and keeps its results.

``RunStore(out, job)`` is used by every command that writes results (``codecs``, ``eval``,
``train``), the sweep engine and the throughput harness. It

- refuses a folder that is not one (``--out`` under a regular file), and a folder that holds
  a *different* job's results (unless ``overwrite``);
- resumes the same job: finished rows are kept and only missing ones are evaluated;
- notices a run that died without saying so, says so, and counts its time as earlier wall
  time; refuses a folder another live process is writing to (the job record,
  :mod:`benchmarks.runs.record`);
- upserts rows by their key, writes them atomically with checksums
  (:func:`benchmarks.results.write_results`), at most every ``flush_every`` seconds;
- records provenance in ``run.json``: the job's kind, its resolved config as data, its
  ``job_id`` (a digest of kind and config), the command line, versions, git commit, host,
  pid, status (``running``, ``complete``, ``interrupted``, ``failed``), wall time, and the
  wall time of earlier sessions of the same job (``earlier_wall_s``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.errors import BenchError
from benchmarks.results import (
    PARQUET,
    RUN_JSON,
    make_folder,
    make_frame,
    read_results,
    row_key,
    write_results,
)
from benchmarks.runs.record import JobRecord, RecordConflict
from vlae_models.files import versions


@dataclass(frozen=True)
class Job:
    """What a run computes: its kind and the resolved config that determines its numbers.

    Settings that do not change a number (workers, progress bars, the output folder) stay out
    of ``config``, so rerunning with other ones resumes the same job.
    """

    kind: str
    config: Mapping[str, Any]
    command: str | None = None  # for people; the config is the identity

    @property
    def job_id(self) -> str:
        return job_id(self.kind, self.config)


def job_id(kind: str, config: Mapping[str, Any]) -> str:
    text = json.dumps({"kind": kind, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@dataclass
class RunStore:
    """An output folder for one job (see the module docstring)."""

    out: Path
    job: Job
    overwrite: bool = False
    flush_every: float = 2.0
    progress_file: str = PARQUET  # what a killed session last wrote: its time ends there
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)  # the table's own metadata

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        make_folder(self.out)
        self.record = JobRecord(self.out / RUN_JSON, self.last_write)
        try:
            self.record.check(self.job.job_id, dict(self.job.config), replace=self.overwrite)
        except RecordConflict as err:
            raise BenchError(
                f"{self.out} holds the results of a different command ({err.what}); use "
                "another --out, or --overwrite to replace them"
            ) from None
        note = None if self.overwrite else self.record.stopped_note()
        if note:
            self.notes.append(note)
        if (self.out / PARQUET).exists() and not self.overwrite:
            kept = read_results([self.out]).drop(columns="source")
            self.rows = kept.to_dict("records")
            self.notes.append(f"resuming: {len(self.rows)} rows already in {self.out / PARQUET}")
        self._last_flush = time.perf_counter()

    def last_write(self) -> float:
        path = self.out / self.progress_file
        return path.stat().st_mtime if path.exists() else time.time()

    # --- rows

    def done(self) -> set[tuple[str, float, str]]:
        """(method, value, image) triples already stored."""
        return {(r["method"], float(r["value"]), r["image"]) for r in self.rows}

    def add(self, rows: Iterable[Mapping[str, Any]], *, replace: bool = False) -> None:
        """Add rows; with ``replace``, rows with the same key as a new row are dropped first."""
        new = [dict(r) for r in rows]
        if replace and self.rows and new:
            frame = make_frame(self.rows + new)
            key = row_key(frame)
            fresh = set(map(tuple, frame.tail(len(new))[key].astype(str).to_numpy()))
            keep = ~frame.head(len(self.rows))[key].astype(str).apply(tuple, axis=1).isin(fresh)
            self.rows = [r for r, k in zip(self.rows, keep, strict=True) if k]
        self.rows += new
        if time.perf_counter() - self._last_flush > self.flush_every:
            self.flush()

    def frame(self) -> pd.DataFrame:
        frame = make_frame(self.rows)
        frame.attrs = dict(self.attrs)
        return frame

    def flush(self) -> None:
        if self.rows:
            write_results(self.frame(), self.out)
        self._last_flush = time.perf_counter()

    # --- provenance

    @contextmanager
    def running(self) -> Iterator[dict[str, Any]]:
        """Keep ``run.json`` for the block: ``running`` while it runs, then its final status
        and wall time; the rows are flushed on the way out, whatever happens."""
        fields = {
            "run_id": new_run_id(), "job_id": self.job.job_id, "kind": self.job.kind,
            "config": dict(self.job.config), "command": self.job.command or command_line(),
            "versions": versions(), "git_commit": _git_commit(),
        }  # fmt: skip
        finished_counts = self.job.kind == "train"  # a finished evaluation rerun: other rows
        with self.record.session(
            fields, check_job=not self.overwrite, count_finished=finished_counts
        ) as info:
            try:
                yield info
            finally:
                self.flush()
                info["rows"] = len(self.rows)
