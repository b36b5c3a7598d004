"""The two helpers every file the suite writes goes through: ``atomic_write`` and ``versions``."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

_VERSIONED = [
    "vlae-bench", "torch", "numpy", "pillow", "compressai", "pillow-jxl-plugin", "safetensors",
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


def atomic_write(path: Path, content: bytes | str | Callable[[Path], None]) -> None:
    """Replace ``path`` with ``content`` (bytes, text, or a function writing to a path) so that
    a crash at any moment leaves either the old file or the new one, never a mix: write a
    temporary file in the same folder, fsync it, rename it over ``path``, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        if callable(content):
            content(Path(tmp))
        else:
            Path(tmp).write_bytes(content.encode() if isinstance(content, str) else content)
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
