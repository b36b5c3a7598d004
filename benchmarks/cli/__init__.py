"""The ``vlae-bench`` command line. It parses options and prints; the work is in the library,
which each command imports when it runs, so that ``--help`` answers at once. Commands live
by concern: :mod:`~benchmarks.cli.evaluation` (``codecs``, ``fuzz``, ``report``),
:mod:`~benchmarks.cli.models` (``models``, ``train``, ``eval``, ``zoo``, ...),
:mod:`~benchmarks.cli.sweeps` (``sweep``, ``demo``, ``compare``), :mod:`~benchmarks.cli.speed`
(``throughput``, ``perf-gate``), :mod:`~benchmarks.cli.studies` (``rd-theory``) and
:mod:`~benchmarks.cli.data`.

Errors caused by input (missing data, bad options, corrupt files, a broken plugin) are
printed as one line and exit with status 2; set VLAE_BENCH_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import os
import sys

from typer.exceptions import Abort, Exit, TyperException

from benchmarks.cli import data, evaluation, models, speed, studies, sweeps  # noqa: F401
from benchmarks.cli.app import app, echo_err

__all__ = ["app", "main"]


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug: printed as one line."""
    from baselines.method import MethodError
    from benchmarks.errors import BenchError
    from vlae_models.errors import ModelError
    from vlae_models.registry import PluginError

    return (BenchError, MethodError, ModelError, PluginError, FileNotFoundError,
            NotADirectoryError)  # fmt: skip


def main() -> None:
    import warnings

    # compressai's import scripts functions with torch.jit, which torch now deprecates: noise.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    try:
        code = app(standalone_mode=False)
    except Exit as stop:
        code = stop.exit_code
    except Abort:
        echo_err("interrupted")
        sys.exit(130)
    except TyperException as err:  # a bad option or value: one line, like other errors
        echo_err(f"error: {' '.join(err.format_message().split())}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        if os.environ.get("VLAE_BENCH_DEBUG") == "1" or not isinstance(err, user_errors()):
            raise
        echo_err(f"error: {' '.join(str(err).split())}")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
