"""A spec file read as TOML, with nothing validated yet: cheap enough (no torch, no pydantic)
for a command to refuse a missing or malformed spec in a fraction of a second."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchError


def read_spec_file(path: Path | str) -> tuple[str, dict[str, Any]]:
    """The spec's text and its TOML table; a missing file or invalid TOML is a BenchError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BenchError(f"no spec at {path}") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as err:
        raise BenchError(f"cannot read the spec {path}: {err}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BenchError(f"{path} is not valid TOML: {err}") from None
