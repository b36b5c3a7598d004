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


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """The folder named by VLAE_BENCH_WEIGHTS (the perceptual metrics' weights)."""
    env = os.environ.get("VLAE_BENCH_WEIGHTS")
    if not env or not Path(env).is_dir():
        _require("VLAE_BENCH_WEIGHTS is not set to an existing folder")
    return Path(env)


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


@pytest.fixture()
def isolated_registries():
    """Registries as they were before the test: plugins a test loads in this process (and a
    registry a broken one left failed) do not leak into the tests after it."""
    import baselines.method  # noqa: F401 - the registries, their built-ins loaded
    import benchmarks.metrics  # noqa: F401
    import benchmarks.runs.experiments  # noqa: F401
    import vlae_models.core  # noqa: F401
    from vlae_models import registry

    for loaded in registry._REGISTRIES.values():
        list(loaded)
    saved = {
        what: (dict(r._entries), dict(r._origins), r._state, r._failure)
        for what, r in registry._REGISTRIES.items()
    }
    plugins, files = dict(registry._PLUGINS), dict(registry._FILE_PATHS)
    yield
    for what, r in list(registry._REGISTRIES.items()):
        if what in saved:
            r._entries, r._origins, r._state, r._failure = saved[what]
    registry._PLUGINS.clear()
    registry._PLUGINS.update(plugins)
    registry._FILE_PATHS.clear()
    registry._FILE_PATHS.update(files)


RANDOM_NETS = {  # CompressAI-layout files of small random nets, one per architecture
    "bmshj2018-hyperprior": ("ScaleHyperprior", {"N": 16, "M": 24}),
    "mbt2018-mean": ("MeanScaleHyperprior", {"N": 16, "M": 24}),
    "mbt2018": ("JointAutoregressiveHierarchicalPriors", {"N": 16, "M": 24}),
    "cheng2020-anchor": ("Cheng2020Anchor", {"N": 16}),
}


def random_net(architecture: str, folder: Path) -> Path:
    """A CompressAI-layout checkpoint of a small, randomly initialised ``architecture``."""
    import compressai.models
    import torch

    cls, sizes = RANDOM_NETS[architecture]
    torch.manual_seed(0)
    path = folder / f"{architecture}.pth.tar"
    torch.save({"state_dict": getattr(compressai.models, cls)(**sizes).state_dict()}, path)
    return path


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Exit status 2 and exactly one line on stderr, ``error: ...``, holding each fragment."""
    assert code == 2, err
    shown = [line.rpartition("\r")[2].strip() for line in err.split("\n")]  # as a terminal
    lines = [line for line in shown if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def stepped_params(net, x, cond):
    """Teacher-forced stepping through x: each pixel's (and channel's) parameters as a decoder
    sees them, before that pixel is written."""
    import torch

    from vlae_models.layers.pixel_steps import PixelSteps

    b, c, h, w = x.shape
    groups = [slice(i, i + 1) for i in range(c)] if net.channel_order == "sequential" else [
        slice(0, c)]  # fmt: skip
    dtype = next(net.parameters()).dtype
    out = torch.full((b, c, net.n_out_params, h, w), float("nan"), dtype=dtype)
    with torch.no_grad():
        state = PixelSteps(net, cond, x.shape)
        for row in range(h):
            state.start_row(row)
            for col in range(w):
                for g in groups:
                    out[:, g, :, row, col] = state.pixel(row, col)[:, g]
                    state.write(row, col, g, x[:, g, row, col])
    return out
