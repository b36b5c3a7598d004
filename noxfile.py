"""Developer sessions: `nox -s tests` (the default suite), `demo`, `lint`, `perf`, `slow`."""

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints.txt")


def install(session: nox.Session, extras: str = "") -> None:
    session.install("-e", f".[{extras}]" if extras else ".", *CONSTRAINTS)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default test suite (everything not marked slow or perf), with the example plugin
    installed as a user installs it (tests/test_example_plugin.py walks through it)."""
    install(session, "test")
    session.install("--no-deps", "-e", "examples/plugin")
    # Two processes, each taking whole files (module fixtures stay in one process): about
    # half the suite's time waits on subprocesses or runs on one core.
    session.run("pytest", "-n", "2", "--dist", "loadfile", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Offline demo (benchmarks/specs/demo.toml): zoo models, a learned codec and classical
    codecs on the photos bundled with scikit-image/scikit-learn."""
    install(session)
    session.run("vlae-bench", "demo", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, and the layer contracts of pyproject.toml's [tool.importlinter] (import-linter:
    no module imports a layer above its own, and no package has an import cycle)."""
    session.install("-e", ".[lint]", *CONSTRAINTS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def perf(session: nox.Session) -> None:
    """The hot paths under pytest-benchmark (tests/perf). Each run is saved in .benchmarks/;
    once a run is there, later runs are compared with it and fail past
    $VLAE_BENCH_PERF_FAIL (default median:15%). The machine-independent gate on ratios is
    `vlae-bench perf-gate` (README, "Speed")."""
    install(session, "test,perf")
    args = ["--benchmark-autosave"]
    if any(Path(".benchmarks").rglob("*.json")):
        fail = os.environ.get("VLAE_BENCH_PERF_FAIL", "median:15%")
        args += ["--benchmark-compare", f"--benchmark-compare-fail={fail}"]
    session.run("pytest", "-m", "perf", "--benchmark-only", *args, *session.posargs)


@nox.session(python=PYTHON)
def slow(session: nox.Session) -> None:
    """Long reproductions (model training on real data)."""
    install(session, "test")
    session.run("pytest", "-m", "slow", *session.posargs)
