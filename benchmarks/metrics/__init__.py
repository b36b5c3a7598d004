"""Metrics: an original and its reconstruction in, one or more named columns out, each with
the direction in which it is better.

A :class:`Metric` states its ``columns`` (``{"psnr": "higher", "mse": "lower"}``), which data
it scores (``binary`` images of 0/1, ``8-bit`` images, or ``any``), and the smallest image
side it is defined for: an image too small for it gets NaN in its columns (never a number
from a crop nobody asked for), and data of another kind gets no column at all.
``prepare(original)`` does the original's share of the work once (SSIM's filtered
statistics); ``score(prepared, reconstruction)`` is called for every reconstruction of that
original.

The registry :data:`METRICS` holds the built-ins (``psnr``, ``ssim``, ``bit-error-rate``:
:mod:`benchmarks.metrics.image`) and outside metrics: a ``vlae_bench.metrics`` entry point,
a ``--plugin`` module or a class decorated with :func:`register_metric`. Every run scores
the :data:`DEFAULT` set; others are asked for by name (``--metrics NAME,...``, a codec pass's
``metrics = [...]``) and become columns of the table, whose directions the table records
(``frame.attrs["metric_columns"]``) so that the report draws RD figures and BD-rates
against them.
"""

from __future__ import annotations

import abc
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from benchmarks.columns import COLUMNS
from benchmarks.errors import BenchError
from vlae_models.registry import PluginError, Registry

DIRECTIONS = ("higher", "lower")
DATA = ("8-bit", "binary", "any")
DEFAULT = ("psnr", "ssim", "bit-error-rate")
BUILT_IN_COLUMNS = {"mse", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "bit_error_rate"}
# Columns the table keeps for other things: a metric writing one would replace a number.
RESERVED = (set(COLUMNS) - BUILT_IN_COLUMNS) | {"items", "checkpoint", "estimator", "arm", "model"}


class MetricError(BenchError):
    """An unknown metric, or one that failed on an image: printed as one line."""


class Metric(abc.ABC):
    """One metric; subclasses set the class attributes and implement :meth:`score`."""

    name: ClassVar[str]
    columns: ClassVar[dict[str, str]]  # column -> "higher" or "lower" (which is better)
    data: ClassVar[str] = "8-bit"  # "8-bit", "binary" (0/1 images) or "any"
    min_side: ClassVar[int] = 1  # the smallest image side it is defined for
    # memory it holds per pixel while scoring, beyond the images (a network's activations;
    # the run refuses, before any work, an image that would not fit)
    bytes_per_pixel: ClassVar[int] = 0
    description: ClassVar[str] = ""

    @classmethod
    def check(cls) -> None:
        """Raise a one-line error if the metric cannot run here (its weights are missing),
        before any work; called when a run's metrics are chosen."""
        return None  # most metrics need nothing beyond their package

    def prepare(self, original: np.ndarray) -> Any:
        """The original's share of the work, done once per original (default: itself)."""
        return original

    @abc.abstractmethod
    def score(self, prepared: Any, reconstruction: np.ndarray) -> dict[str, float]:
        """The metric's columns for one reconstruction (uint8, the original's shape)."""

    def applies(self, original: np.ndarray, binary: bool) -> bool:
        kind = "binary" if binary else "8-bit"
        return self.data in (kind, "any") and min(original.shape[:2]) >= self.min_side


def _adopt(name: str, cls: Any) -> type[Metric]:
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise PluginError(f"metric '{name}': {cls!r} is not a subclass of Metric")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise PluginError(f"metric '{name}': {cls.__name__} does not define {', '.join(missing)}")
    columns = getattr(cls, "columns", None)
    if not isinstance(columns, dict) or not columns or any(
        not isinstance(c, str) or d not in DIRECTIONS for c, d in columns.items()
    ):  # fmt: skip
        raise PluginError(
            f"metric '{name}': {cls.__name__}.columns must map column names to 'higher' or "
            f"'lower' (which is better), got {columns!r}"
        )
    if not isinstance(cls.bytes_per_pixel, int) or cls.bytes_per_pixel < 0:
        raise PluginError(f"metric '{name}': bytes_per_pixel must be an int >= 0, "
                          f"got {cls.bytes_per_pixel!r}")  # fmt: skip
    if cls.data not in DATA:
        raise PluginError(f"metric '{name}': data must be one of {DATA}, got {cls.data!r}")
    declared = cls.__dict__.get("name")  # its own, not a parent's
    if declared not in (None, name):
        raise PluginError(f"metric '{name}': {cls.__name__}.name is {declared!r}, not {name!r}")
    cls.name = name
    return cls


def _builtins() -> None:
    """The modules that register the built-in metrics (``ssim`` is a helper that imports
    torch: it loads when SSIM runs, not when metrics are listed)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(f"benchmarks.metrics.{module}")


BUILTIN_MODULES = ("image", "perceptual", "iqa")
METRICS: Registry[type[Metric]] = Registry(
    "metric", MetricError, builtins=_builtins,
    group="vlae_bench.metrics", adopt=_adopt, owner=__name__,
)  # fmt: skip


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator: register a :class:`Metric` under ``name`` (``--metrics NAME``)."""
    return METRICS.add(name)


def metric_names(asked: Sequence[str] | None) -> tuple[str, ...]:
    """The default set plus the metrics ``asked`` for, each checked against the registry and
    against each other: no two metrics may write one column, and none may write a column the
    table keeps for something else (``bpp``, ``method``...): a number would be replaced."""
    names = list(DEFAULT)
    for name in asked or ():
        METRICS[name]  # an unknown name is a one-line error here, before any work
        if name not in names:
            names.append(name)
    writers: dict[str, str] = {}
    for name in names:
        _checked(name)
        for column in METRICS[name].columns:
            if column in writers or column in RESERVED:
                other = f"metric '{writers[column]}'" if column in writers else "the table"
                raise MetricError(
                    f"metric '{name}' ({METRICS.origin(name).label}) writes column "
                    f"'{column}', which {other} already writes; rename the column"
                )
            writers[column] = name
    return tuple(names)


def _checked(name: str) -> None:
    """The metric's own ``check()``; what a plugin's raises beyond a one-line error is one
    line naming it."""
    try:
        METRICS[name].check()
    except BenchError:
        raise
    except Exception as err:
        message = " ".join(str(err).split())[:200]
        raise MetricError(f"metric '{name}' ({METRICS.origin(name).label}) failed its check: "
                          f"{type(err).__name__}: {message}") from None  # fmt: skip


def column_info(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{column: {"better": direction, "metric": name}}`` for the metrics ``names``: what
    the results table records, and the report reads, about each column."""
    info = {}
    for name in names:
        for column, better in METRICS[name].columns.items():
            info[column] = {"better": better, "metric": name}
    return info


class Scorer:
    """Every asked metric of decodings against one original: ``Scorer(names, original,
    binary)(decoded) -> {column: value}``; each metric prepares the original once."""

    def __init__(self, names: Sequence[str], original: np.ndarray, binary: bool) -> None:
        self.original = original
        self.metrics: list[tuple[Metric, Any]] = []
        self.absent: dict[str, float] = {}
        for name in names:
            metric = METRICS[name]()
            if metric.applies(original, binary):
                self.metrics.append((metric, _guarded(metric, "prepare", metric.prepare,
                                                      original)))  # fmt: skip
            elif metric.data in ("any", "binary" if binary else "8-bit"):
                self.absent.update(dict.fromkeys(metric.columns, math.nan))  # too small

    def __call__(self, decoded: np.ndarray) -> dict[str, float]:
        scored = dict(self.absent)
        for metric, prepared in self.metrics:
            scored.update(_guarded(metric, "score", _score, metric, prepared, decoded))
        return scored


def _score(metric: Metric, prepared: Any, decoded: np.ndarray) -> dict[str, float]:
    values = metric.score(prepared, decoded)
    if not isinstance(values, dict) or set(values) != set(metric.columns):
        got = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise MetricError(f"metric '{metric.name}' ({METRICS.origin(metric.name).label}) "
                          f"returned {got}, not its columns {sorted(metric.columns)}")  # fmt: skip
    return {k: float(v) for k, v in values.items()}


def _guarded(metric: Metric, what: str, call: Callable, *args: Any) -> Any:
    """``call(*args)``; an exception from a metric is one line naming it and its origin."""
    try:
        return call(*args)
    except MetricError:
        raise
    except Exception as err:
        origin = METRICS.origin(metric.name).label
        message = " ".join(str(err).split())[:200]
        raise MetricError(
            f"metric '{metric.name}' ({origin}) failed in {what}: {type(err).__name__}: {message}"
        ) from None
