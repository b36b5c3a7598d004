"""The helpers every file the suite writes goes through: ``atomic_write``, ``append_line``
and ``versions``. A full disk is one :class:`DiskFullError` line naming the file, never a
traceback, and never a half-written file in place of a whole one."""

from __future__ import annotations

import errno
import os
import platform
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from vlae_models.errors import ModelError

_VERSIONED = [
    "vlae-bench", "torch", "numpy", "pillow", "compressai", "pillow-jxl-plugin", "safetensors",
    "lpips", "DISTS-pytorch", "piq", "torchmetrics",
]  # fmt: skip


def versions() -> dict[str, str]:
    """Versions of the packages that can change a number in a table or a checkpoint."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


class DiskFullError(ModelError):
    """No space left on the device (or over quota): what was written before is kept."""


FULL = (errno.ENOSPC, errno.EDQUOT)


def check_checkpoint(reference: str) -> None:
    """Refuse a checkpoint path that names no file, before torch loads (``zoo:NAME`` is
    looked up later, in the zoo's index)."""
    if not reference.startswith("zoo:") and not Path(reference).is_file():
        raise ModelError(f"checkpoint {reference}: no such file")


def disk_full(path: Path, err: OSError) -> DiskFullError:
    return DiskFullError(
        f"the disk is full: cannot write {path} ({err.strerror}); free some space and rerun "
        "(what was written before is kept, and the rerun resumes)"
    )


def atomic_write(path: Path, content: bytes | str | Callable[[Path], None]) -> None:
    """Replace ``path`` with ``content`` (bytes, text, or a function writing to a path) so that
    a crash at any moment leaves either the old file or the new one, never a mix: write a
    temporary file in the same folder, fsync it, rename it over ``path``, fsync the folder."""
    path = Path(path)
    try:
        _replace(path, content)
    except OSError as err:
        if err.errno in FULL:
            raise disk_full(path, err) from None
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to a log (``train_log.jsonl``); a full disk is one line."""
    try:
        with Path(path).open("a") as f:
            f.write(line + "\n")
    except OSError as err:
        if err.errno in FULL:
            raise disk_full(Path(path), err) from None
        raise


def _fill(tmp: Path, content: bytes | str | Callable[[Path], None]) -> None:
    if callable(content):
        content(tmp)
    else:
        tmp.write_bytes(content.encode() if isinstance(content, str) else content)


def _replace(path: Path, content: bytes | str | Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        _fill(Path(tmp), content)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
