"""pytest-benchmark suites (`nox -s perf`): compare speeds side by side in one run.

Absolute times on a shared machine are noise; read the ratios between rows of one run, e.g.
with ``--benchmark-group-by=group``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from baselines.codec import make_codec
from benchmarks.metrics import ImageMetrics

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def pair(kodak_dir):
    original = np.asarray(Image.open(kodak_dir / "kodim01.png"))
    codec = make_codec("jpeg", 50)
    return original, codec.decode(codec.encode(original))


@pytest.mark.benchmark(group="metrics")
def test_metrics_shared_reference(benchmark, pair):
    original, decoded = pair
    measure = ImageMetrics(original)
    benchmark(measure, decoded)


@pytest.mark.benchmark(group="metrics")
def test_metrics_pytorch_msssim_twice(benchmark, pair):
    from pytorch_msssim import ms_ssim, ssim

    from benchmarks.ssim import to_tensor

    original, decoded = pair

    def both():
        x, y = to_tensor(original), to_tensor(decoded)
        return ssim(x, y, data_range=255), ms_ssim(x, y, data_range=255)

    benchmark(both)


@pytest.mark.benchmark(group="encode")
@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "jxl", "jpeg2000", "png"])
def test_encode(benchmark, pair, name):
    codec = make_codec(name)
    benchmark(codec.encode, pair[0])
