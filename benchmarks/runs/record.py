"""The one job record: the JSON file in which a job keeps its state.

Every job that writes into a folder keeps one: a run of ``codecs``, ``eval``, ``train`` or
``throughput`` (``run.json``, :mod:`benchmarks.runs.store`) and a sweep job (``job.json``,
:mod:`benchmarks.runs.sweep`). It holds what the job is (``kind``, ``job_id``, ``config``),
who runs it (``host``, ``pid``, ``started``), how it ended (``status``, ``finished``,
``wall_s``, ``error``) and what earlier attempts spent (``attempts``, ``earlier_wall_s``).
Written atomically at every change, so a job killed at any moment leaves a record that
says so: ``running`` with its process gone.

:meth:`JobRecord.state` reads it as one of ``pending`` (no record), ``running`` (its process
is alive on this host), ``stopped`` (interrupted, or killed), ``complete``, ``failed`` or
``conflict`` (another job's record). :meth:`JobRecord.session` is one attempt: it refuses a
record another live process holds or another job wrote, carries the earlier attempts' wall
time over (a killed attempt counts from its start to the folder's last write), and ends
with the attempt's status and wall time whatever happens.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchError
from benchmarks.results import read_record
from vlae_models.files import DiskFullError, atomic_write

STATES = ("pending", "running", "stopped", "complete", "failed", "conflict")


class RecordInUse(BenchError):
    """Another live process holds the record (a second run over the same folder)."""


class RecordConflict(BenchError):
    """The record belongs to another job (the command, spec or profile changed): ``what``
    says what changed, or the other job's command."""

    def __init__(self, folder: Path, what: str) -> None:
        super().__init__(f"{folder} holds the results of another job ({what})")
        self.folder, self.what = folder, what


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def alive(pid: int) -> bool:
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


class JobRecord:
    """The record file at ``path``; ``last_write`` gives when a killed attempt last wrote
    anything (default: the newest file in the record's folder)."""

    def __init__(self, path: Path, last_write: Callable[[], float] | None = None) -> None:
        self.path = Path(path)
        self._last_write = last_write or (lambda: newest_write(self.path.parent))

    def read(self) -> dict[str, Any] | None:
        """The record, or None; a damaged one is a one-line error."""
        return read_record(self.path)

    def state(self, job_id: str) -> str:
        """One of :data:`STATES` for the job ``job_id``."""
        info = self.read()
        if info is None:
            return "pending"
        if info.get("job_id") != job_id:
            return "conflict"
        status = info.get("status")
        if status == "running":
            return "running" if held_elsewhere(info) else "stopped"
        return status if status in ("complete", "failed") else "stopped"

    def write(self, info: Mapping[str, Any]) -> None:
        try:
            write_json(self.path, info)
        except DiskFullError:  # no room for a new file: overwrite the record where it is
            text = json.dumps(info, indent=2, sort_keys=True, default=str) + "\n"
            try:
                with self.path.open("r+" if self.path.exists() else "w") as f:
                    f.write(text)
                    f.truncate()
            except OSError:  # not even that: the next run sees a run that stopped
                pass

    def check(
        self, job_id: str, config: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any] | None:
        """The record, after refusing one another live process holds (:class:`RecordInUse`)
        and, unless ``replace``, one of another job (:class:`RecordConflict`)."""
        previous = self.read()
        if previous is not None and held_elsewhere(previous):
            raise RecordInUse(
                f"{self.path.parent} is in use by another vlae-bench process "
                f"(pid {previous.get('pid')})"
            )
        if not replace and previous is not None and previous.get("job_id") != job_id:
            changed = config_changes(previous.get("config") or {}, config)
            what = f"changed: {changed}" if changed else previous.get("command") or "another job"
            raise RecordConflict(self.path.parent, what)
        return previous

    @contextmanager
    def session(
        self, fields: Mapping[str, Any], *, check_job: bool = True, count_finished: bool = True
    ) -> Iterator[dict[str, Any]]:
        """One attempt of the job ``fields["job_id"]``: the record says ``running`` during the
        block, then ``complete``, ``interrupted`` (Ctrl-C, or a requeue) or ``failed`` (with the
        error), with the wall time. ``check_job`` refuses another job's record (off: the
        caller starts afresh, replacing whatever record is there); ``count_finished``
        carries a finished attempt's wall time over (off for an evaluation rerun, whose time
        went to other rows)."""
        previous = self.check(fields["job_id"], fields.get("config") or {}, replace=not check_job)
        same = check_job and previous is not None and previous.get("job_id") == fields["job_id"]
        info: dict[str, Any] = {
            **fields, "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
            "started": now(), "attempts": (previous or {}).get("attempts", 0) + 1 if same else 1,
        }  # fmt: skip
        earlier = self._earlier_wall(previous, count_finished) if same else 0.0
        if earlier:
            info["earlier_wall_s"] = earlier
        self.write(info)
        start, status = time.perf_counter(), "failed"
        try:
            yield info
            status = "complete"
        except (KeyboardInterrupt, SystemExit):  # SIGINT, or submitit requeueing the job
            status = "interrupted"
            raise
        except Exception as err:
            info["error"] = f"{type(err).__name__}: {' '.join(str(err).split())}"
            raise
        finally:
            info.update(status=status, finished=now(), wall_s=round(time.perf_counter() - start, 2))
            self.write(info)

    def stopped_note(self) -> str | None:
        """What to tell the user when the last attempt ended without saying so."""
        info = self.read()
        if info is None or info.get("status") != "running" or held_elsewhere(info):
            return None
        return (
            f"the previous run in {self.path.parent} (pid {info.get('pid')}, started "
            f"{info.get('started')}) ended without finishing; continuing it"
        )

    def _earlier_wall(self, previous: Mapping[str, Any], count_finished: bool) -> float:
        """Wall time the earlier attempts spent: their own, and theirs before them. One that
        finished or was interrupted recorded ``wall_s``; one that was killed did not, and
        counts from its start to the folder's last write."""
        earlier = float(previous.get("earlier_wall_s", 0.0))
        if previous.get("status") == "complete" and not count_finished:
            return earlier
        wall = previous.get("wall_s")
        if wall is None:
            try:
                started = datetime.fromisoformat(previous["started"]).timestamp()
            except (KeyError, TypeError, ValueError) as err:
                raise BenchError(f"{self.path} is damaged ({err})") from err
            wall = max(0.0, self._last_write() - started)
        return round(earlier + float(wall), 2)


def held_elsewhere(info: Mapping[str, Any]) -> bool:
    """Whether the record says ``running`` by a live process other than this one, on this
    host (a process on another host cannot be checked: its record is taken as stopped)."""
    pid = info.get("pid")
    return (
        info.get("status") == "running"
        and info.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and pid != os.getpid()
        and alive(pid)
    )


def newest_write(folder: Path) -> float:
    """The newest modification time of the files under ``folder`` (now, if there are none)."""
    times = [p.stat().st_mtime for p in Path(folder).rglob("*") if p.is_file()]
    return max(times) if times else time.time()


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
