"""The run store: the one place that opens an output folder and keeps its results.

``RunStore(out, job)`` is used by every command that writes results (``codecs``, ``eval``,
``train``), the sweep engine and the throughput harness. It

- refuses a folder that is not one (``--out`` under a regular file), and a folder that holds
  a *different* job's results (unless ``overwrite``);
- resumes the same job: finished rows are kept and only missing ones are evaluated;
- notices a run that died without saying so (``run.json`` still ``running``, its process
  gone), says so, and counts its time as earlier wall time; refuses a folder another live
  process is writing to;
- upserts rows by their key, writes them atomically with checksums
  (:func:`benchmarks.results.write_results`), at most every ``flush_every`` seconds;
- records provenance in ``run.json``: the job's kind, its resolved config as data, its
  ``job_id`` (a digest of kind and config), the command line, versions, git commit, host,
  pid, status (``running``, ``complete``, ``interrupted``, ``failed``), wall time, and the
  wall time of earlier interrupted sessions of the same job (``earlier_wall_s``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
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
from benchmarks.results import PARQUET, make_frame, read_results, row_key, write_results
from vlae_models.files import atomic_write, versions

RUN_JSON = "run.json"


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


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_run(folder: Path) -> dict[str, Any] | None:
    """The folder's ``run.json``, or None; a damaged one is a one-line error."""
    path = Path(folder) / RUN_JSON
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        return info
    except ValueError as err:
        raise BenchError(
            f"{path} is damaged ({err}); move it away, or start afresh (--overwrite; --fresh "
            "for train)"
        ) from err


def load_runs(folders: Iterable[Path]) -> list[dict[str, Any]]:
    """``run.json`` of each folder that has one (folders and results files alike)."""
    runs = []
    for path in folders:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        info = read_run(folder)
        if info is not None:
            runs.append(info)
    return runs


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        make_folder(self.out)
        previous = read_run(self.out)
        self.earlier_wall_s = 0.0
        if previous is not None and not self.overwrite:
            self._check_same_job(previous)
            self.earlier_wall_s = self._earlier_time(previous)
        if (self.out / PARQUET).exists() and not self.overwrite:
            kept = read_results([self.out]).drop(columns="source")
            self.rows = kept.to_dict("records")
            self.notes.append(f"resuming: {len(self.rows)} rows already in {self.out / PARQUET}")
        self._last_flush = time.perf_counter()

    def _check_same_job(self, previous: dict[str, Any]) -> None:
        if previous.get("status") == "running" and previous.get("host") == socket.gethostname():
            pid = previous.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
                raise BenchError(f"{self.out} is in use by another vlae-bench process (pid {pid})")
        if previous.get("job_id") != self.job.job_id:
            changed = config_changes(previous.get("config") or {}, dict(self.job.config))
            what = f"changed: {changed}" if changed else previous.get("command") or "another job"
            raise BenchError(
                f"{self.out} holds the results of a different command ({what}); use another "
                "--out, or --overwrite to replace them"
            )

    def _earlier_time(self, previous: dict[str, Any]) -> float:
        """Wall time earlier sessions of this job spent (their own, and theirs before them).

        A session that finished or was interrupted recorded ``wall_s``; one that was killed
        did not, and counts from its start to its folder's last write.
        """
        earlier = float(previous.get("earlier_wall_s", 0.0))
        if previous.get("status") == "complete" and self.job.kind != "train":
            return earlier  # a finished evaluation rerun: its time was spent on other rows
        wall = previous.get("wall_s")
        if wall is None:
            self.notes.append(
                f"the previous run in {self.out} (pid {previous.get('pid')}, started "
                f"{previous.get('started')}) ended without finishing; continuing it"
            )
            try:
                started = datetime.fromisoformat(previous["started"]).timestamp()
            except (KeyError, ValueError) as err:
                raise BenchError(f"{self.out / RUN_JSON} is damaged ({err})") from err
            wall = max(0.0, self.last_write() - started)
        return round(earlier + float(wall), 2)

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
        return make_frame(self.rows)

    def flush(self) -> None:
        if self.rows:
            write_results(self.frame(), self.out)
        self._last_flush = time.perf_counter()

    # --- provenance

    @contextmanager
    def running(self) -> Iterator[dict[str, Any]]:
        """Keep ``run.json`` for the block: ``running`` while it runs, then its final status
        and wall time; the rows are flushed on the way out, whatever happens."""
        info: dict[str, Any] = {
            "run_id": new_run_id(),
            "job_id": self.job.job_id,
            "kind": self.job.kind,
            "config": dict(self.job.config),
            "command": self.job.command or command_line(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "status": "running",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "versions": versions(),
            "git_commit": _git_commit(),
        }
        if self.earlier_wall_s:
            info["earlier_wall_s"] = self.earlier_wall_s
        write_json(self.out / RUN_JSON, info)
        status, start = "failed", time.perf_counter()
        try:
            yield info
            status = "complete"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.flush()
            info.update(
                status=status,
                rows=len(self.rows),
                finished=datetime.now(UTC).isoformat(timespec="seconds"),
                wall_s=round(time.perf_counter() - start, 2),
            )
            write_json(self.out / RUN_JSON, info)


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], most: int = 3) -> str:
    """The first few keys whose values differ, ``key: old -> new``, nested keys dotted."""

    def flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in config.items():
            if isinstance(value, Mapping):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(old), flat(json.loads(json.dumps(new, default=str)))
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = [f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in keys[:most]]
    return "; ".join(shown) + (f"; {len(keys) - most} more" if len(keys) > most else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def make_folder(out: Path) -> None:
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise BenchError(f"cannot use {out} as an output folder: {parent} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"cannot create output folder {out}: {err.strerror}") from err
