"""Codec round-trips on real images, byte accounting and parameter checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from baselines.codec import all_codecs, make_codec
from baselines.method import METHODS, MethodError
from benchmarks.metrics.image import psnr

# The built-in codecs that need no weights (the classical ones); every stream method,
# learned and plugged-in ones too, is round-tripped in test_stream_protocol.py.
CLASSICAL = [
    c for c in all_codecs() if not c.needs_weights and METHODS.origin(c.name).kind == "builtin"
]
AVAILABLE = [c.name for c in CLASSICAL if c.unavailable_reason() is None]
LOSSLESS = [c.name for c in CLASSICAL if c.lossless and c.name in AVAILABLE]
LOSSY = [c.name for c in CLASSICAL if not c.lossless and c.name in AVAILABLE]


@pytest.fixture(scope="module")
def photo(kodak_dir) -> np.ndarray:
    # A 256x384 crop keeps the slower encoders (AVIF, JPEG 2000) quick.
    return np.asarray(Image.open(kodak_dir / "kodim23.png"))[128:384, 192:576].copy()


def test_every_registered_codec_is_available_here():
    # The project's install provides all of them; an unavailable one must say why.
    for cls in all_codecs():
        assert cls.unavailable_reason() is None, f"{cls.name}: {cls.unavailable_reason()}"


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_round_trip_is_exact(name, photo):
    codec = make_codec(name)
    decoded = codec.decode(codec.encode(photo))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, photo)


@pytest.mark.parametrize("name", ["gzip", "bz2", "lzma"])
def test_array_coders_round_trip_binary_and_gray(name, binarized_mnist_dir):
    import scipy.io

    x = scipy.io.loadmat(binarized_mnist_dir / "binarized_mnist_test.mat")["X"][:16]
    binary = x.reshape(16, 28, 28).astype(np.uint8)
    codec = make_codec(name)
    stream = codec.encode(binary)
    assert np.array_equal(codec.decode(stream), binary)
    # bit-packing: binary data must cost well under one byte per pixel
    assert len(stream) < binary.size / 8 + 64
    gray = (binary * 200 + 17).astype(np.uint8)
    assert np.array_equal(codec.decode(codec.encode(gray)), gray)


@pytest.mark.parametrize("name", LOSSY)
def test_lossy_round_trip_shape_and_monotone_quality(name, photo):
    cls = type(make_codec(name))
    low, high = cls.param.default_sweep[0], cls.param.default_sweep[-1]
    results = []
    for value in (low, high):
        codec = cls(value)
        stream = codec.encode(photo)
        decoded = codec.decode(stream)
        assert decoded.shape == photo.shape and decoded.dtype == np.uint8
        results.append((len(stream), psnr(photo, decoded)))
    (bytes_low, psnr_low), (bytes_high, psnr_high) = results
    assert bytes_high > bytes_low and psnr_high > psnr_low
    assert psnr_low > 20  # a real reconstruction, not noise


def test_counted_bytes_are_the_whole_pillow_stream(photo):
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=50)
    assert make_codec("jpeg", 50).encode(photo) == buffer.getvalue()


def test_jpeg_chroma_subsampling_modes(photo):
    from PIL import JpegImagePlugin

    for name, expected in (("jpeg", 2), ("jpeg444", 0)):
        stream = make_codec(name, 80).encode(photo)
        assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(stream))) == expected


def test_jpeg2000_meets_its_psnr_target_roughly(photo):
    codec = make_codec("jpeg2000", 35)
    measured = psnr(photo, codec.decode(codec.encode(photo)))
    assert abs(measured - 35) < 1.5


def test_unknown_codec_and_out_of_range_quality_are_clear_errors():
    with pytest.raises(MethodError, match="unknown method 'nope'"):
        make_codec("nope")
    with pytest.raises(MethodError, match="quality 120 out of range for 'jpeg'"):
        make_codec("jpeg", 120)
    with pytest.raises(MethodError, match="must be an integer"):
        make_codec("webp", 50.5)


def test_codec_rejects_wrong_input(photo):
    with pytest.raises(MethodError, match="uint8"):
        make_codec("jpeg").encode(photo.astype(np.float32))


def test_jpeg2000_uses_the_colour_transform_for_rgb(photo):
    # COD marker segment: FF52, Lcod(2), Scod(1), progression(1), layers(2), MCT(1)
    stream = make_codec("jpeg2000", 35).encode(photo)
    cod = stream.index(b"\xff\x52")
    assert stream[cod + 8] == 1
