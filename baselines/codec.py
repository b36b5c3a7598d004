"""The codec protocol and its registry.

A codec turns a uint8 image (H x W x 3, or H x W for gray and binary arrays) into bytes and
back. The bytes counted for the rate are exactly what ``encode`` returns: the whole stream,
headers included, as CompressAI counts classical codecs. Each codec has one rate parameter
(``quality`` for JPEG, ``level`` for PNG, ``psnr_db`` for JPEG 2000...) with a valid range.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


class CodecError(Exception):
    """Unknown codec, unavailable codec or parameter out of range: printed as one line."""


@dataclass(frozen=True)
class ParamSpec:
    """The one parameter a codec's rate is controlled by."""

    name: str
    low: float
    high: float
    default: float
    integer: bool = True
    sweep: tuple[float, ...] = ()  # values a sweep uses when the user gives none

    @property
    def default_sweep(self) -> tuple[float, ...]:
        return self.sweep or (self.default,)

    def check(self, codec: str, value: float) -> float:
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise CodecError(
                f"{self.name} {value:g} out of range for codec '{codec}' "
                f"(allowed {self.low:g}..{self.high:g})"
            )
        if self.integer and value != int(value):
            raise CodecError(f"{self.name} for codec '{codec}' must be an integer, got {value:g}")
        return int(value) if self.integer else float(value)


class Codec(abc.ABC):
    """One codec at one parameter value. Subclasses set the class attributes below."""

    name: ClassVar[str]
    description: ClassVar[str]
    param: ClassVar[ParamSpec]
    lossless: ClassVar[bool] = False

    def __init__(self, value: float | None = None) -> None:
        self.value = self.param.check(self.name, self.param.default if value is None else value)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this codec cannot run on this machine, or None when it can."""
        return None

    @abc.abstractmethod
    def encode(self, image: np.ndarray) -> bytes:
        """Compress a uint8 array; the returned bytes are the complete stream."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decompress to a uint8 array of the encoded shape."""

    def __repr__(self) -> str:
        return f"{self.name}({self.param.name}={self.value})"


CODECS: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec]) -> type[Codec]:
    CODECS[cls.name] = cls
    return cls


def _load_codec_modules() -> None:
    from baselines import classical  # noqa: F401  (registers the classical codecs)


def codec_class(name: str) -> type[Codec]:
    """Look a codec up by name; unknown or unavailable codecs raise CodecError."""
    _load_codec_modules()
    if name not in CODECS:
        raise CodecError(f"unknown codec '{name}'; available: {', '.join(sorted(CODECS))}")
    cls = CODECS[name]
    reason = cls.unavailable_reason()
    if reason:
        raise CodecError(f"codec '{name}' is unavailable on this machine: {reason}")
    return cls


def make_codec(name: str, value: float | None = None) -> Codec:
    return codec_class(name)(value)


def all_codecs() -> list[type[Codec]]:
    """Every registered codec, available or not (check ``unavailable_reason``)."""
    _load_codec_modules()
    return [CODECS[k] for k in sorted(CODECS)]
