"""Worker processes of the evaluation path: how many, how they start, how they die.

Workers are spawned (forking a process that holds torch can hang), run one torch thread
each, import the caller's plugins again (:func:`vlae_models.registry.restore`) and ask
Linux to kill them when the main process dies, so ``kill -9`` leaves no orphans.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from vlae_models.registry import Origin, restore

DEVICE = {"name": "cpu"}  # this process's device for methods, set when it starts
_START_ERRORS: list[BaseException] = []  # what went wrong when this worker started


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def init_worker(device: str, plugins: Sequence[Origin]) -> None:
    """A pool worker's start: die with the parent, one torch thread, the plugins."""

    die_with_parent()
    # CompressAI's entropy models warn once per process; in a pool that is once per worker.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    torch.set_num_threads(1)
    DEVICE["name"] = device
    restore_plugins(plugins)


def restore_plugins(plugins: Sequence[Origin]) -> None:
    """Import the caller's plugins again. A failure is kept and raised by the worker's first
    task (:func:`check_started`): raised here, it would kill the pool and lose the message."""
    try:
        restore(plugins)
    except Exception as err:  # a plugin that imported in the caller and not here
        _START_ERRORS.append(err)


def check_started() -> None:
    """Raise what went wrong when this worker started, if anything did."""
    if _START_ERRORS:
        raise _START_ERRORS[0]


@contextmanager
def in_this_process(device: str) -> Iterator[None]:
    """Evaluate in the caller's process (``workers=1``): one torch thread for the block,
    the caller's thread count restored after it."""

    threads, before = torch.get_num_threads(), DEVICE["name"]
    torch.set_num_threads(1)
    DEVICE["name"] = device
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        DEVICE["name"] = before


@contextmanager
def spawnable_main() -> Iterator[None]:
    """Let spawned workers start when ``__main__`` names a file that does not exist (code
    piped to ``python -``: ``<stdin>``): multiprocessing would try to run that "file" in
    every worker and the pool would die. Such a main is treated as a notebook's, whose
    registered classes reach the workers pickled."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    phantom = path is not None and getattr(main, "__spec__", None) is None and not (
        os.path.isfile(path)
    )  # fmt: skip
    if phantom:
        del main.__file__
    try:
        yield
    finally:
        if phantom:
            main.__file__ = path


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the main process dies (no orphans after kill -9)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown has to do
        pass
