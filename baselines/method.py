"""The method protocol: anything that turns images into a rate and a reconstruction.

Classical codecs (:mod:`baselines.classical`), trained model checkpoints
(:mod:`baselines.models`) and CompressAI's learned codecs (:mod:`baselines.learned`) are all
methods, and all go through one evaluation path (:mod:`benchmarks.evaluation.engine`), so their rows
land in one table.

Lifecycle. A :class:`Setting` names one method at one parameter value; it is small and
picklable. Each worker process builds a method from a setting once (``build``), calls
``setup(device)`` once (weights loaded, device chosen, tables built), then calls ``code`` on
batches of uint8 arrays. ``code`` returns one :class:`Coding` per array: the reconstruction,
the rate in nats under each rate kind the method can honestly state, and its timings. A
method that writes bytes (a codec) states ``coded``; a model without an entropy coder states
``kl``, ``fixed`` or ``prior``. Metrics are never computed here: methods see arrays, return
arrays.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vlae_models.registry import PluginError, Registry, import_submodules

RATE_KINDS = ("coded", "kl", "estimate", "fixed", "prior")


class MethodError(Exception):
    """Unknown or unavailable method, or a parameter out of range: printed as one line."""


@dataclass(frozen=True)
class ParamSpec:
    """The one parameter a method's rate is controlled by."""

    name: str
    low: float
    high: float
    default: float
    integer: bool = True
    sweep: tuple[float, ...] = ()  # values a sweep uses when the user gives none

    @property
    def default_sweep(self) -> tuple[float, ...]:
        return self.sweep or (self.default,)

    def check(self, method: str, value: float) -> float:
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise MethodError(
                f"{self.name} {value:g} out of range for '{method}' "
                f"(allowed {self.low:g}..{self.high:g})"
            )
        if self.integer and value != int(value):
            raise MethodError(f"{self.name} for '{method}' must be an integer, got {value:g}")
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class Setting:
    """One method at one parameter value, as the results table labels it.

    ``method`` is the registry name that builds it; ``label`` is the ``method`` column of
    the rows (a codec's own name, a model's registry name); ``source`` is a checkpoint path
    or a zoo name for methods that load weights.
    """

    method: str
    label: str
    param: str
    value: float
    source: str | None = None

    def build(self) -> Method:
        return available_method(self.method)(self.value, self.source)


@dataclass
class Coding:
    """What a method made of one array: reconstruction, rates (nats per image), timings."""

    reconstruction: np.ndarray  # uint8, the input's shape
    rates: dict[str, float]  # rate_kind -> nats for the whole array
    enc_s: float = math.nan
    dec_s: float = math.nan
    n_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more columns (kl_nats, ...)


class Method(abc.ABC):
    """One method at one parameter value. Subclasses set the class attributes below."""

    name: ClassVar[str]
    description: ClassVar[str]
    param: ClassVar[ParamSpec]
    rate_kinds: ClassVar[tuple[str, ...]] = ("coded",)
    lossless: ClassVar[bool] = False
    needs_weights: ClassVar[bool] = False  # True: it codes only with a checkpoint (``NAME:SOURCE``)
    max_items: ClassVar[int] = 64  # arrays per ``code`` call (a worker task)

    def __init__(self, value: float | None = None, source: str | None = None) -> None:
        self.value = self.param.check(self.name, self.param.default if value is None else value)
        self.source = source

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this method cannot run on this machine, or None when it can."""
        return None

    @classmethod
    def settings(
        cls, source: str | None, values: str | None, quality: str | None
    ) -> tuple[list[Setting], list[str]]:
        """The settings a user's ``NAME[=VALUES]`` asks for, and notes to print.

        ``--quality`` applies to methods whose parameter is a quality; lossless methods run
        once at their default level; other parameters use their own default sweep unless given.
        """
        notes = []
        if source is not None:
            raise MethodError(f"'{cls.name}' takes no source ('{cls.name}:{source}')")
        if values:
            chosen = parse_values(values)
        elif cls.lossless:
            chosen = [cls.param.default]
        elif quality is not None and cls.param.name == "quality":
            chosen = parse_values(quality)
        else:
            chosen = list(cls.param.default_sweep)
            if quality is not None:
                notes.append(
                    f"{cls.name}: --quality does not set its {cls.param.name}; using "
                    f"{format_values(chosen)} (give {cls.name}=START:STOP:STEP to change)"
                )
        return [
            Setting(cls.name, cls.name, cls.param.name, cls.param.check(cls.name, v))
            for v in chosen
        ], notes

    def setup(self, device: str = "cpu") -> None:  # noqa: B027 - optional hook
        """Once per worker process, before the first ``code`` call."""

    @abc.abstractmethod
    def code(self, arrays: Sequence[np.ndarray]) -> list[Coding]:
        """Code each uint8 array (H x W or H x W x C) and return what came back."""

    def __repr__(self) -> str:
        return f"{self.name}({self.param.name}={self.value})"


def _adopt(name: str, cls: Any) -> type[Method]:
    """A method class as a registry entry: a concrete :class:`Method` (a :class:`Codec` for
    one that writes bytes) with its rate parameter."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise PluginError(f"method '{name}': {cls!r} is not a subclass of Method or Codec")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise PluginError(f"method '{name}': {cls.__name__} does not define {', '.join(missing)}")
    if not isinstance(getattr(cls, "param", None), ParamSpec):
        raise PluginError(
            f"method '{name}': {cls.__name__} has no param (a ParamSpec: the one parameter "
            "its rate is controlled by, e.g. ParamSpec('level', 0, 9, 9))"
        )
    declared = cls.__dict__.get("name")  # its own, not a parent's: a subclass is another method
    if declared not in (None, name):
        raise PluginError(f"method '{name}': {cls.__name__}.name is {declared!r}, not {name!r}")
    cls.name = name
    if not cls.__dict__.get("description"):
        cls.description = (cls.__dict__.get("__doc__") or cls.__name__).strip().splitlines()[0]
    return cls


METHODS: Registry[type[Method]] = Registry(
    "method", MethodError, builtins=lambda: import_submodules("baselines"),
    group="vlae_bench.methods", adopt=_adopt, owner=__name__,
)  # fmt: skip


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` or :class:`~baselines.codec.Codec` under
    ``name`` (``-c NAME`` on the command line, ``codec = "NAME"`` in a spec)."""
    return METHODS.add(name)


def available_method(name: str) -> type[Method]:
    """The registered method ``name``; unknown or unavailable here raises MethodError."""
    cls = METHODS[name]
    reason = cls.unavailable_reason()
    if reason:
        raise MethodError(f"'{name}' is unavailable on this machine: {reason}")
    return cls


def parse_values(spec: str) -> list[float]:
    """``"5:95:5"`` (inclusive range), ``"10,50,90"`` or ``"50"`` -> sorted distinct numbers."""
    try:
        if ":" in spec:
            start, stop, step = (float(part) for part in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = [start + i * step for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise MethodError(
            f"cannot parse values '{spec}': use START:STOP:STEP, a comma list or a number"
        ) from None
    if not values:
        raise MethodError(f"no values in '{spec}'")
    rounded = [int(v) if float(v).is_integer() else round(v, 6) for v in values]
    return sorted(set(rounded))  # a value given twice is one setting, not two


def format_values(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


@dataclass(frozen=True)
class MethodRequest:
    """A method as a user asks for it: a registry name, a source (a checkpoint path or zoo
    name) and values. :meth:`parse` reads the ``-c`` spelling ``NAME[:SOURCE][=VALUES]``."""

    name: str
    source: str | None = None
    values: str | None = None

    @classmethod
    def parse(cls, text: str) -> MethodRequest:
        head, _, values = text.partition("=")
        name, _, source = head.strip().partition(":")
        return cls(name, source or None, values.strip() or None)


def check_names(requests: Sequence[str | MethodRequest]) -> None:
    """Each request's method is registered and available here: what a typo needs to be
    refused in a fraction of a second, before the evaluation stack (torch) loads."""
    for request in requests:
        available_method(MethodRequest.parse(request).name if isinstance(request, str)
                         else request.name)  # fmt: skip


def plan(
    requests: Sequence[str | MethodRequest], quality: str | None
) -> tuple[list[Setting], list[str]]:
    """Resolve methods asked for (``-c`` texts such as ``jpeg``, ``jpeg=10:90:10``,
    ``model:PATH``, ``zoo:NAME``, or :class:`MethodRequest` s) and the shared ``--quality``
    sweep into distinct settings, plus notes.

    A setting asked for twice (``-c jpeg -c jpeg``) is run once, with a note.
    """
    settings: list[Setting] = []
    notes: list[str] = []
    for request in requests:
        if isinstance(request, str):
            request = MethodRequest.parse(request)
        cls = available_method(request.name)
        found, more = cls.settings(request.source, request.values, quality)
        notes += more
        for setting in found:
            if setting in settings:
                notes.append(
                    f"{setting.label} {setting.param}={setting.value:g} asked twice; run once"
                )
            else:
                settings.append(setting)
    if not settings:
        raise MethodError("no method given (use --codec NAME, see `vlae-bench codecs --list`)")
    labels = {}
    for s in settings:
        key = (s.label, s.value)
        if key in labels and labels[key] != s:
            raise MethodError(
                f"two settings would share the label {s.label} {s.param}={s.value:g} "
                f"({labels[key].source} and {s.source}); evaluate them into separate --out folders"
            )
        labels[key] = s
    return settings, notes
