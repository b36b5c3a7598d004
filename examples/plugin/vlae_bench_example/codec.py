"""zlib on bit-packed pixels: a lossless codec for gray and binary images."""

import struct
import zlib

import numpy as np

from benchmarks import Codec, MethodError, ParamSpec


class ZlibBits(Codec):
    """zlib (DEFLATE) of the pixels, bit-packed when binary, after a 5-byte header."""

    param = ParamSpec("level", 0, 9, 9)  # the one parameter its rate depends on
    lossless = True

    def encode(self, image: np.ndarray) -> bytes:
        if image.ndim != 2:
            raise MethodError("zlib-bits codes gray and binary images (H x W)")
        binary = int(image.max(initial=0) <= 1)
        body = np.packbits(image) if binary else image
        header = struct.pack(">HHB", *image.shape, binary)
        return header + zlib.compress(body.tobytes(), int(self.value))

    def decode(self, data: bytes) -> np.ndarray:
        try:
            h, w, binary = struct.unpack(">HHB", data[:5])
            raw = np.frombuffer(zlib.decompress(data[5:]), np.uint8)
            return (np.unpackbits(raw)[: h * w] if binary else raw).reshape(h, w)
        except (struct.error, zlib.error, ValueError) as err:  # not a stream it wrote
            raise MethodError(f"zlib-bits: cannot decode ({err})") from None
