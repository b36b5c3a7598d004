"""One stream face for every method that writes bytes. Classical codecs, CompressAI's nets,
trained models as codecs, bits-back coding and a plugin's codec all turn one image into bytes
(``encode``) and back (``decode``), so one test round-trips each, decodes mutated streams
with it and times it through ``throughput``, with the same calls."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RANDOM_NETS, random_net, run_cli
from PIL import Image

from baselines.codec import Codec
from baselines.method import METHODS, MethodError, MethodRequest, plan
from benchmarks.datasets import load_items
from benchmarks.evaluation.fuzz import fuzz
from benchmarks.speed.throughput import Target, measure
from vlae_models.errors import ModelError

STREAM_METHODS = sorted(
    name for name, cls in METHODS.items()
    if issubclass(cls, Codec) and cls.unavailable_reason() is None
)  # fmt: skip
MNIST_MODEL = "zoo:beta-vae-binarized-mnist"
SOURCES = {  # what a method that needs weights is given
    "model": MNIST_MODEL, "zoo": MNIST_MODEL.removeprefix("zoo:"), "bb-ans": MNIST_MODEL,
    "bmshj2018-factorized": "zoo:factorized-photos-0.013",
    # decoded to the means of an autoregressive decoder: the VLAE
    "model-mean": "zoo:vlae-binarized-mnist", "zoo-mean": "vlae-binarized-mnist",
}  # fmt: skip


@pytest.fixture(scope="module")
def samples(kodak_dir, binarized_mnist_dir) -> list[np.ndarray]:
    """An RGB crop, a gray crop and a binary digit: each codec gets the first it takes."""
    rgb = np.asarray(Image.open(kodak_dir / "kodim01.png"))[200:264, 300:364].copy()
    root = binarized_mnist_dir.parent
    digit = load_items("binarized-mnist", split="test", limit=1, data_dir=root)
    return [rgb, np.ascontiguousarray(rgb[..., 1]), digit[0].pixels]


# The zoo's other model codecs, each with a stream parser of its own (HVAE levels, VQ indices,
# the hierarchical VLAE's levels, the VQ indices under the PixelCNN prior).
MORE_MODELS = [
    "model@zoo:hvae-binarized-mnist",
    "model@zoo:vq-vae-binarized-mnist",
    "model@zoo:hierarchical-vlae-binarized-mnist",
    "model@zoo:vq-vae-ar-binarized-mnist",
]


def build(name: str, folder) -> Codec:
    name, _, given = name.partition("@")
    source = given or SOURCES.get(name)
    if name in RANDOM_NETS:
        source = str(random_net(name, folder))
    settings, _ = plan([MethodRequest(name, source)], None)
    method = settings[0].build()
    method.setup("cpu")
    return method


def first_taken(method: Codec, samples: list[np.ndarray]) -> tuple[np.ndarray, bytes]:
    """The first sample the method encodes, and its stream."""
    refusals = []
    for image in samples:
        try:
            return image, method.encode(image)
        except (MethodError, ModelError) as err:  # not an image this codec codes
            refusals.append(str(err))
    raise AssertionError(f"{method.name} codes none of the samples: {refusals}")


@pytest.mark.parametrize("name", [*STREAM_METHODS, *MORE_MODELS])
def test_every_stream_method_round_trips_survives_mutation_and_is_timed(name, samples, tmp_path):
    method = build(name, tmp_path)
    assert method.writes_stream
    image, data = first_taken(method, samples)
    assert isinstance(data, bytes) and data
    decoded = method.decode(data)
    assert decoded.dtype == np.uint8 and decoded.shape == image.shape
    if method.lossless:
        assert np.array_equal(decoded, image)
    found = fuzz(method, [image], n=30, seed=1)
    assert found.total == 30 and not found.failures, found.failures[:3]
    rows = measure(Target(name, method=method), batch_sizes=(2,), repeats=2, warmup=0,
                   phases=("encode", "decode"), images=[image])  # fmt: skip
    assert [r["phase"] for r in rows] == ["encode", "decode"]
    assert all(r["images_per_s"] > 0 for r in rows)


def test_the_plugins_codec_is_among_them():
    assert "zlib-bits" in STREAM_METHODS  # the example plugin, installed in the test session
    assert {"bb-ans", "model", "jpeg", "bmshj2018-hyperprior"} <= set(STREAM_METHODS)


def test_bits_back_is_fuzzed_and_timed_from_the_command_line(
    monkeypatch, capsys, binarized_mnist_dir, tmp_path
):
    """The CLI's fuzz and throughput take a bits-back coder like any codec (it once failed on
    an internal shape error: its stream face was a batch's)."""
    root = str(binarized_mnist_dir.parent)
    code, out, err = run_cli(monkeypatch, capsys, "fuzz", "-c", f"bb-ans:{MNIST_MODEL}",
                             "--dataset", "binarized-mnist", "--data-dir", root, "--limit", "2",
                             "--streams", "60")  # fmt: skip
    assert code == 0, err
    assert "60 streams" in out and "failure" not in err
    code, out, err = run_cli(monkeypatch, capsys, "throughput", f"bb-ans:{MNIST_MODEL}",
                             "--out", str(tmp_path / "t"), "--batch-size", "2", "--repeats", "1",
                             "--warmup", "0", "--data-dir", root)  # fmt: skip
    assert code == 0, err
    assert "encode" in out and "decode" in out
