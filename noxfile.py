"""Developer sessions: `nox -s tests` (the default suite), `demo`, `lint`, `perf`, `slow`."""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints.txt")


def install(session: nox.Session, extras: str = "") -> None:
    session.install("-e", f".[{extras}]" if extras else ".", *CONSTRAINTS)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default test suite (everything not marked slow or perf)."""
    install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Offline demo (benchmarks/specs/demo.toml): zoo models, a learned codec and classical
    codecs on the photos bundled with scikit-image/scikit-learn."""
    install(session)
    session.run("vlae-bench", "demo", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def perf(session: nox.Session) -> None:
    """pytest-benchmark suites (speed as ratios measured side by side)."""
    install(session, "test,perf")
    session.run("pytest", "-m", "perf", "--benchmark-only", *session.posargs)


@nox.session(python=PYTHON)
def slow(session: nox.Session) -> None:
    """Long reproductions (model training on real data)."""
    install(session, "test")
    session.run("pytest", "-m", "slow", *session.posargs)
