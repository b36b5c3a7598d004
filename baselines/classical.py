"""Classical codecs, in process: Pillow image codecs and zlib/bz2/lzma for raw arrays.

Settings follow each library's defaults unless stated, so results match what a user gets
from Pillow directly:

- ``jpeg``: libjpeg(-turbo) baseline, chroma 4:2:0 (Pillow's default); ``jpeg444`` keeps full
  chroma. No ``optimize`` pass.
- ``webp``: libwebp lossy, method 4. ``avif``: libavif through Pillow (>= 11.3), speed 6, 4:2:0.
- ``jpeg2000``: OpenJPEG, irreversible 9/7 wavelet with the multi-component (YCbCr) transform,
  one quality layer at a target PSNR in dB (OpenJPEG's own rate control: the parameter is
  what the encoder aims for, not what it gets).
- ``jxl``: libjxl through ``pillow-jxl-plugin``, effort 7, single thread.
- ``png``: lossless, zlib level 0..9.
- ``gzip``/``bz2``/``lzma``: general-purpose lossless coders for binary and 8-bit arrays. The
  array is written with a small header (shape, and whether values were bit-packed); arrays
  holding only 0 and 1 are packed 8 pixels per byte first. Header bytes are counted.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import struct
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from PIL import Image, features

from baselines.codec import Codec
from baselines.method import MethodError, ParamSpec, register_method

QUALITY = ParamSpec("quality", 0, 100, 75, sweep=tuple(range(10, 100, 10)))


class PillowCodec(Codec):
    """A codec that is one call to ``Image.save`` and one to ``Image.open``."""

    pillow_format: ClassVar[str]
    pillow_feature: ClassVar[str | None] = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if cls.pillow_feature and not features.check(cls.pillow_feature):
            return f"this Pillow build has no '{cls.pillow_feature}' support"
        return None

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {"quality": self.value}

    def encode(self, image: np.ndarray) -> bytes:
        _check_image(self.name, image)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=self.pillow_format, **self.save_options(image))
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        with _stream_errors(self.name), Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img)

    def decode_as(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        with _stream_errors(self.name), Image.open(io.BytesIO(data)) as img:
            img.load()
            if len(shape) == 2 and img.mode != "L":
                img = img.convert("L")  # WebP and AVIF store gray as colour
            return np.asarray(img)


@register_method("jpeg")
class Jpeg(PillowCodec):
    name = "jpeg"
    description = "JPEG (libjpeg via Pillow), 4:2:0 chroma subsampling"
    param = QUALITY
    pillow_format = "JPEG"
    pillow_feature = "jpg"
    subsampling: ClassVar[int] = 2  # Pillow's code for 4:2:0

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {"quality": self.value, "subsampling": self.subsampling}


@register_method("jpeg444")
class Jpeg444(Jpeg):
    name = "jpeg444"
    description = "JPEG (libjpeg via Pillow), 4:4:4 (no chroma subsampling)"
    subsampling = 0


@register_method("webp")
class WebP(PillowCodec):
    name = "webp"
    description = "WebP lossy (libwebp via Pillow), method 4"
    param = QUALITY
    pillow_format = "WEBP"
    pillow_feature = "webp"

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {"quality": self.value, "method": 4}


@register_method("avif")
class Avif(PillowCodec):
    name = "avif"
    description = "AVIF (libavif via Pillow), speed 6, 4:2:0"
    param = QUALITY
    pillow_format = "AVIF"
    pillow_feature = "avif"

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {"quality": self.value, "speed": 6, "subsampling": "4:2:0", "max_threads": 1}


@register_method("jpeg2000")
class Jpeg2000(PillowCodec):
    name = "jpeg2000"
    description = "JPEG 2000 (OpenJPEG via Pillow), 9/7 wavelet, target PSNR in dB"
    param = ParamSpec("psnr_db", 15, 80, 35, integer=False, sweep=(26, 29, 32, 35, 38, 41, 44))
    pillow_format = "JPEG2000"
    pillow_feature = "jpg_2000"

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {
            "quality_mode": "dB",
            "quality_layers": [self.value],
            "irreversible": True,
            # Pillow's default is no colour transform, which codes R, G and B separately and
            # costs about 2.5x the bytes at equal PSNR; every real J2K encoder uses YCbCr.
            "mct": 1 if image.ndim == 3 else 0,
        }


@register_method("jxl")
class JpegXL(PillowCodec):
    name = "jxl"
    description = "JPEG XL (libjxl via pillow-jxl-plugin), effort 7"
    param = ParamSpec(
        "quality", 0, 99, 90, sweep=tuple(range(10, 100, 10))
    )  # 100 means lossless in the plugin
    pillow_format = "JXL"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
        except ImportError as err:
            return f"pillow-jxl-plugin is not importable ({err})"
        return None

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {"quality": self.value, "effort": 7, "num_threads": 1}


@register_method("png")
class Png(PillowCodec):
    name = "png"
    description = "PNG (zlib via Pillow), lossless"
    param = ParamSpec("level", 0, 9, 6)
    lossless = True
    pillow_format = "PNG"
    pillow_feature = "zlib"

    def save_options(self, image: np.ndarray) -> dict[str, Any]:
        return {"compress_level": self.value}


_MAGIC = b"VBA1"
_HEADER = struct.Struct("<4sBB")  # magic, bit-packed flag, ndim; then ndim uint32 sizes


class ArrayCodec(Codec):
    """A general-purpose byte compressor applied to a raw uint8 array."""

    lossless = True

    def compress(self, raw: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def decompress(self, data: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, image: np.ndarray) -> bytes:
        if image.dtype != np.uint8:
            raise MethodError(f"codec '{self.name}' takes uint8 arrays, got {image.dtype}")
        packed = bool(image.size) and int(image.max()) <= 1
        payload = np.packbits(image, axis=None) if packed else np.ascontiguousarray(image)
        header = _HEADER.pack(_MAGIC, packed, image.ndim)
        header += struct.pack(f"<{image.ndim}I", *image.shape)
        return self.compress(header + payload.tobytes())

    def decode(self, data: bytes) -> np.ndarray:
        with _stream_errors(self.name):
            raw = self.decompress(data)
            magic, packed, ndim = _HEADER.unpack_from(raw)
            if magic != _MAGIC:
                raise MethodError(f"codec '{self.name}': not a vlae-bench array stream")
            shape = struct.unpack_from(f"<{ndim}I", raw, _HEADER.size)
            body = np.frombuffer(raw, np.uint8, offset=_HEADER.size + 4 * ndim)
            count = int(np.prod(shape))
            values = np.unpackbits(body, count=count) if packed else body[:count]
            return values.reshape(shape).copy()


@register_method("gzip")
class Gzip(ArrayCodec):
    name = "gzip"
    description = "gzip (DEFLATE) of the raw array, bit-packed when binary"
    param = ParamSpec("level", 0, 9, 9)

    def compress(self, raw: bytes) -> bytes:
        return gzip.compress(raw, compresslevel=self.value, mtime=0)

    def decompress(self, data: bytes) -> bytes:
        return gzip.decompress(data)


@register_method("bz2")
class Bzip2(ArrayCodec):
    name = "bz2"
    description = "bzip2 of the raw array, bit-packed when binary"
    param = ParamSpec("level", 1, 9, 9)

    def compress(self, raw: bytes) -> bytes:
        return bz2.compress(raw, compresslevel=self.value)

    def decompress(self, data: bytes) -> bytes:
        return bz2.decompress(data)


@register_method("lzma")
class Lzma(ArrayCodec):
    name = "lzma"
    description = "xz/LZMA2 of the raw array, bit-packed when binary"
    param = ParamSpec("level", 0, 9, 6)

    def compress(self, raw: bytes) -> bytes:
        return lzma.compress(raw, preset=self.value)

    def decompress(self, data: bytes) -> bytes:
        return lzma.decompress(data)


@contextlib.contextmanager
def _stream_errors(codec: str) -> Iterator[None]:
    """A stream the library cannot decode (cut, corrupt, not its format) is a MethodError."""
    try:
        yield
    except MethodError:
        raise
    except (OSError, EOFError, SyntaxError, ValueError, RuntimeError, struct.error, zlib.error,
            lzma.LZMAError, Image.DecompressionBombError) as err:  # fmt: skip
        raise MethodError(f"codec '{codec}' cannot decode the stream: {err}") from None


def _check_image(codec: str, image: np.ndarray) -> None:
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise MethodError(
            f"codec '{codec}' takes uint8 HxW or HxWx3 images, got {image.dtype} {image.shape}"
        )
