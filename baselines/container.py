"""The stream format of the suite's learned codecs: a small self-describing header, then the
entropy coder's strings.

Layout (integers big-endian)::

    b"VLBS"  u8 format version  u16 header length  header (compact JSON)
    u16 string count  (u32 length, bytes) per string  u32 CRC-32 of everything before it

The header names the method, a hash of its weights and config (``config``), the image and
latent shapes, the library versions and the device class that encoded (``cpu``, or the CUDA
device's name). :func:`unpack` refuses a stream that is cut, corrupt (CRC), of another format
or of other weights; it warns when the versions or the device class differ, because CompressAI's
float entropy models do not reliably decode on another device than the one that encoded
(CompressAI #279, #309, #320): a warning, not silence.

The rate ``coded`` counts the strings only, as CompressAI does; ``container_bytes`` in the
same row counts the whole stream.
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
import zlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from baselines.method import MethodError

MAGIC = b"VLBS"
VERSION = 1
MAX_STRINGS = 1 << 16
MAX_PIXELS = 1 << 26  # 8192 x 8192: a forged header must not make the decoder allocate more
# Coder tables that CompressAI's update() derives from the weights: not part of their identity.
DERIVED_BUFFERS = {"_quantized_cdf", "_offset", "_cdf_length", "scale_table"}


class StreamError(MethodError):
    """A stream that cannot be decoded: cut, corrupt, or written by other weights."""


class SetupMismatchWarning(UserWarning):
    """The stream was encoded with other library versions or on another device class."""


@dataclass(frozen=True)
class Stream:
    header: dict[str, Any]
    strings: list[bytes]

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.strings)


def pack(header: dict[str, Any], strings: list[bytes]) -> bytes:
    """The stream for ``strings`` under ``header`` (JSON-serialisable, kept compact)."""
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if len(head) >= 1 << 16 or len(strings) >= MAX_STRINGS:
        raise ValueError("header or string count too large for the stream format")
    parts = [MAGIC, struct.pack(">BH", VERSION, len(head)), head, struct.pack(">H", len(strings))]
    for s in strings:
        parts += [struct.pack(">I", len(s)), s]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(data: bytes, expect: dict[str, Any]) -> Stream:
    """Parse and check a stream. ``expect`` holds the decoder's own ``method``, ``config``,
    ``versions`` and ``device``: the first two must match, the last two are warned about."""
    if len(data) < 13 or data[:4] != MAGIC:
        raise StreamError("not a vlae-bench stream (bad magic or too short)")
    if zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise StreamError("stream is corrupt or cut (CRC-32 mismatch)")
    version, head_len = struct.unpack_from(">BH", data, 4)
    if version != VERSION:
        raise StreamError(f"stream format version {version}; this decoder reads {VERSION}")
    try:
        header = json.loads(data[7 : 7 + head_len])
        (count,) = struct.unpack_from(">H", data, 7 + head_len)
        pos, strings = 9 + head_len, []
        for _ in range(count):
            (length,) = struct.unpack_from(">I", data, pos)
            strings.append(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
    except (ValueError, struct.error) as err:
        raise StreamError(f"stream is malformed: {err}") from None
    if pos != len(data) - 4:
        raise StreamError("stream is malformed: its strings do not fill it")
    _check(header, expect)
    return Stream(header, strings)


def _check(header: Any, expect: dict[str, Any]) -> None:
    if not isinstance(header, dict):
        raise StreamError("stream header is not a mapping")
    for key in ("method", "config"):
        if header.get(key) != expect[key]:
            raise StreamError(
                f"stream was encoded by {key} {header.get(key)!r}; this decoder is "
                f"{expect[key]!r}: decoding it would give garbage"
            )
    for key in ("versions", "device"):
        if header.get(key) != expect[key]:
            warnings.warn(
                f"stream was encoded with {key} {header.get(key)!r} and is decoded with "
                f"{expect[key]!r}: float entropy models may decode differently "
                "(CompressAI #279, #309, #320)",
                SetupMismatchWarning,
                stacklevel=3,
            )


def identity(method: str, module: Any, device: Any) -> dict[str, Any]:
    """What a stream's header says of its encoder, and what its decoder expects: the method,
    a hash of the weights (not of the coder tables derived from them), the library versions
    and the device class ("cpu", or the CUDA device's name). Versions come from the packages'
    metadata: importing compressai for its version alone costs seconds."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if key.rsplit(".", 1)[-1] in DERIVED_BUFFERS:
            continue
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    device_class = "cpu"
    if device.type == "cuda":
        import torch  # loaded already: the module's weights are torch tensors

        device_class = torch.cuda.get_device_name(device)
    torch_version = metadata.version("torch").split("+")[0]
    return {
        "method": method, "config": digest.hexdigest()[:16],
        "versions": f"torch {torch_version} compressai {metadata.version('compressai')}",
        "device": device_class,
    }  # fmt: skip


def image_shape(value: Any) -> list[int]:
    """The header's image shape: H x W or H x W x C, at most ``MAX_PIXELS`` pixels."""
    rank = 3 if isinstance(value, list) and len(value) == 3 else 2
    shape = positive_ints(value, rank)
    if shape[0] * shape[1] > MAX_PIXELS:
        raise StreamError(f"stream header claims a {shape[0]}x{shape[1]} image, over the limit")
    return shape


def positive_ints(value: Any, length: int, limit: int = 1 << 16) -> list[int]:
    """A header field that must be ``length`` integers in 1..limit (shapes)."""
    if not (isinstance(value, list) and len(value) == length and all(
        type(n) is int and 0 < n <= limit for n in value
    )):  # fmt: skip
        raise StreamError(f"stream header has a bad shape {value!r}")
    return value
