"""Shared fixtures: real data from $VLAE_BENCH_DATA, skipped politely when absent.

With VLAE_BENCH_REQUIRE_DATA=1 (set by .ci/run) a missing dataset fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks import cli


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, small convolutions with several
    threads run many times slower (threads spin while others hold the cores)."""
    import torch

    torch.set_num_threads(1)


def _require(reason: str) -> None:
    if os.environ.get("VLAE_BENCH_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason} (VLAE_BENCH_REQUIRE_DATA=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder named by VLAE_BENCH_DATA."""
    env = os.environ.get("VLAE_BENCH_DATA")
    if not env or not Path(env).is_dir():
        _require("VLAE_BENCH_DATA is not set to an existing folder")
    return Path(env)


def require_subdir(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        _require(f"dataset folder {path} is missing")
    return path


@pytest.fixture(scope="session")
def kodak_dir(data_root: Path) -> Path:
    return require_subdir(data_root, "kodak")


@pytest.fixture(scope="session")
def mnist_dir(data_root: Path) -> Path:
    return require_subdir(data_root, "mnist")


@pytest.fixture(scope="session")
def binarized_mnist_dir(data_root: Path) -> Path:
    return require_subdir(data_root, "binarized_mnist")


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``vlae-bench ARGS`` in process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["vlae-bench", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def kodak3(kodak_dir, tmp_path):
    """A data root holding the first three Kodak images."""
    root = tmp_path / "data"
    (root / "kodak").mkdir(parents=True)
    for name in ("kodim01.png", "kodim02.png", "kodim03.png"):
        shutil.copy(kodak_dir / name, root / "kodak" / name)
    return root


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Exit status 2 and exactly one line on stderr, ``error: ...``, holding each fragment."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
