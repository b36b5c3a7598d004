"""The stream format of the suite's learned codecs: a compact binary header, then the entropy
coder's strings.

Layout (version 2; integers big-endian, ``varint`` = unsigned LEB128)::

    b"VLB" u8 version                                     4 bytes
    encoder: 6 bytes of SHA-256(method, weights)          6
    setup:   2 bytes of SHA-256(library versions, device) 2
    varint field count, then per field: u8 name code, varint n, n varints (shapes)
    varint string count, varint length of every string but the last, the strings
    u32 CRC-32 of everything before it                    4

On a 28 x 28 digit with one string this is 26 bytes beside the payload (0.27 bpp), on a Kodak
image 0.0005 bpp. Version 1 wrote the same facts as JSON, about 160 bytes: more than gzip
needs for a whole binarized digit. :func:`unpack` refuses a stream that is cut, corrupt (CRC),
of another format or of other weights or another method; it warns when the setup digest
differs, because CompressAI's float entropy models do not reliably decode on another device
or library version than the one that encoded (CompressAI #279, #309, #320): a warning, not
silence.

The rate ``coded`` counts the strings only, as CompressAI does; ``container_bytes`` in the
same row counts the whole stream.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from baselines.method import MethodError

MAGIC = b"VLB"
VERSION = 2
FIELDS = ("image", "latent", "lanes")  # the header's shape fields, by their one-byte codes
IDENTITY = ("method", "config", "versions", "device")  # what the two digests are made of
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
    header: dict[str, list[int]]  # the shape fields (FIELDS)
    strings: list[bytes]

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.strings)


def _digest(*parts: str, size: int) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()[:size]


def _digests(identity: dict[str, Any]) -> bytes:
    """The 8 bytes that name the encoder: its method and weights, then its setup."""
    encoder = _digest(str(identity["method"]), str(identity["config"]), size=6)
    return encoder + _digest(str(identity["versions"]), str(identity["device"]), size=2)


def _varint(n: int) -> bytes:
    if type(n) is not int or n < 0:
        raise ValueError(f"stream header values are non-negative integers, got {n!r}")
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def pack(header: dict[str, Any], strings: list[bytes]) -> bytes:
    """The stream for ``strings``: ``header`` holds the encoder's identity (:func:`identity`)
    and shape fields (``FIELDS``: lists of non-negative integers)."""
    fields = {k: v for k, v in header.items() if k not in IDENTITY}
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown or not 0 < len(strings) < MAX_STRINGS:
        raise ValueError(f"unknown header fields {unknown} or {len(strings)} strings")
    parts = [MAGIC, bytes([VERSION]), _digests(header), _varint(len(fields))]
    for name, values in sorted(fields.items()):
        parts += [bytes([FIELDS.index(name)]), _varint(len(values)), *map(_varint, values)]
    parts += [_varint(len(strings)), *(_varint(len(s)) for s in strings[:-1]), *strings]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


class _Reader:
    """Reads varints from a stream's body; running off its end is a malformed stream."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise StreamError("stream is malformed: its header runs past its end")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self, limit: int = 1 << 40) -> int:
        n = shift = 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            if n > limit:
                raise StreamError(f"stream is malformed: a header value over {limit}")
            if not b & 0x80:
                return n
            shift += 7


def unpack(data: bytes, expect: dict[str, Any]) -> Stream:
    """Parse and check a stream. ``expect`` is the decoder's own :func:`identity`: its method
    and weights must match the stream's, its setup is warned about."""
    if len(data) < 17 or data[:3] != MAGIC:
        raise StreamError("not a vlae-bench stream (bad magic or too short)")
    if zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise StreamError("stream is corrupt or cut (CRC-32 mismatch)")
    if data[3] != VERSION:
        raise StreamError(f"stream format version {data[3]}; this decoder reads {VERSION}")
    _check(data[4:12], expect)
    body = _Reader(data[:-4], 12)
    header = {}
    for _ in range(body.varint(len(FIELDS))):
        code = body.byte()
        if code >= len(FIELDS):
            raise StreamError(f"stream is malformed: unknown header field {code}")
        header[FIELDS[code]] = [body.varint() for _ in range(body.varint(1 << 16))]
    count = body.varint(MAX_STRINGS)
    lengths = [body.varint(len(data)) for _ in range(count - 1)]
    lengths.append(len(data) - 4 - body.pos - sum(lengths))
    if count < 1 or lengths[-1] < 0:
        raise StreamError("stream is malformed: its strings do not fill it")
    strings, pos = [], body.pos
    for length in lengths:
        strings.append(data[pos : pos + length])
        pos += length
    return Stream(header, strings)


def _check(digests: bytes, expect: dict[str, Any]) -> None:
    mine = _digests(expect)
    if digests[:6] != mine[:6]:
        raise StreamError(
            f"stream was encoded by another method or other weights than this decoder "
            f"({expect['method']}, weights {expect['config']}): decoding it would give garbage"
        )
    if digests[6:] != mine[6:]:
        warnings.warn(
            f"stream was encoded with other library versions or on another device class "
            f"than this decoder's ({expect['versions']}, {expect['device']}): float entropy "
            "models may decode differently (CompressAI #279, #309, #320)",
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
