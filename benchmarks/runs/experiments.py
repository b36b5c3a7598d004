"""Experiment arms: sweep jobs that are neither a model nor a codec, but a study's own
measurement (a β-VAE trained on a synthetic source, measured against its R(D)).

An :class:`Experiment` names the settings its arm may set (``train`` and ``grid`` keys) and
how one job writes its pass (``run(out, settings)``, through a run store). Studies join the
registry as any outside package would, through the ``vlae_bench.experiments`` entry-point
group (the suite's own: ``gaussian`` and ``bernoulli``, :mod:`benchmarks.studies.rd_experiments`),
so the sweep engine imports no study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchError
from vlae_models.registry import PluginError, Registry


@dataclass(frozen=True)
class Experiment:
    """``run(out, settings)`` writes one job's rows into the run folder ``out``."""

    settings: frozenset[str]
    run: Callable[[Path, dict[str, Any]], Path]
    description: str = ""


def _adopt(name: str, obj: Any) -> Experiment:
    if not isinstance(obj, Experiment):
        raise PluginError(f"experiment '{name}': {obj!r} is not an Experiment")
    return obj


EXPERIMENTS: Registry[Experiment] = Registry(
    "experiment", BenchError, builtins=lambda: None, group="vlae_bench.experiments",
    adopt=_adopt, owner=__name__,
)  # fmt: skip
