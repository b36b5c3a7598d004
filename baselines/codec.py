"""Codecs: methods that write bytes. The one stream face of the suite.

A codec turns one uint8 image (H x W x 3, or H x W for gray and binary arrays) into bytes,
``encode(image) -> bytes``, and back, ``decode(data) -> image``. Every method that writes
a stream has this face and nothing else: classical codecs, CompressAI's nets, trained
models as codecs and bits-back coding alike, so round trips, ``fuzz`` and ``throughput``
treat them all the same way. A codec may code a whole task in one call of ``code`` (bits-back
coding puts a task's images in one message), but ``encode``/``decode`` stay per image.

The bytes counted for the rate are exactly what ``encode`` returns: the whole stream,
headers included, as CompressAI counts classical codecs (learned codecs override ``code``
to count their payload beside the container). Each codec has one rate parameter
(``quality`` for JPEG, ``level`` for PNG, ``psnr_db`` for JPEG 2000...) with a valid range.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence

import numpy as np

from baselines.method import METHODS, Coding, Method, MethodError, available_method
from vlae_models.units import LN2


class Codec(Method):
    """A method whose rate is the length of the stream it writes (``rate_kind`` ``coded``)."""

    rate_kinds = ("coded",)

    @property
    def writes_stream(self) -> bool:
        """Whether ``encode`` gives bytes (a checkpoint of a model without ``compress``
        states its rate instead; see :mod:`baselines.models`)."""
        return True

    @abc.abstractmethod
    def encode(self, image: np.ndarray) -> bytes:
        """Compress a uint8 array; the returned bytes are the complete stream."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decompress to a uint8 array of the encoded shape; a stream that cannot be decoded
        raises :class:`MethodError` (one line), never another exception."""

    def decode_as(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Decode for an original of ``shape``: codecs that store gray as colour (WebP, AVIF)
        convert back to gray here, as a decoder asked for gray output would."""
        return self.decode(data)

    def code(self, arrays: Sequence[np.ndarray]) -> list[Coding]:
        codings = []
        for image in arrays:
            start = time.perf_counter()
            data = self.encode(image)
            enc_s = time.perf_counter() - start
            start = time.perf_counter()
            decoded = self.decode_as(data, image.shape)
            dec_s = time.perf_counter() - start
            codings.append(
                Coding(decoded, {"coded": len(data) * 8 * LN2}, enc_s, dec_s, n_bytes=len(data))
            )
        return codings


def codec_class(name: str) -> type[Codec]:
    """Look a codec up by name; unknown or unavailable codecs raise MethodError."""
    cls = available_method(name)
    if not issubclass(cls, Codec):
        raise MethodError(f"'{name}' is a method but not a codec")
    return cls


def make_codec(name: str, value: float | None = None) -> Codec:
    return codec_class(name)(value)


def all_codecs() -> list[type[Codec]]:
    """Every registered codec, available or not (check ``unavailable_reason``)."""
    return [cls for _, cls in METHODS.items() if issubclass(cls, Codec)]
