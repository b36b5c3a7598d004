"""A large image is coded and scored in memory a few times its own bytes (an 8000 x 8000
image once took 15 GB and 300 s), with the whole-image numbers; one that cannot fit is
refused in one line before any work."""

from __future__ import annotations

import threading

import numpy as np
import psutil
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image

from benchmarks import evaluate, load_items
from benchmarks.metrics.ssim import TILED_ABOVE


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple:
    """A 2400 x 2400 gray photo-like image (over the tiled route's threshold), as a folder."""
    folder = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (60, 60)).astype(np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((2400, 2400), Image.BICUBIC))
    noisy = np.clip(image.astype(np.int16) + rng.integers(-4, 5, image.shape), 0, 255)
    Image.fromarray(noisy.astype(np.uint8)).save(folder / "large.png")
    return folder, noisy.astype(np.uint8)


class PeakMemory:
    """The process's resident memory, sampled every millisecond, above its level at start."""

    def __enter__(self) -> PeakMemory:
        self.process, self.stop = psutil.Process(), threading.Event()
        self.base = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.001):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def above(self) -> int:
        return self.peak - self.base


def test_a_large_image_is_scored_in_a_few_times_its_bytes(large):
    folder, pixels = large
    assert pixels.size > TILED_ABOVE  # the tiled route
    items = load_items(f"folder:{folder}")  # gray is expanded to RGB: the raw bytes counted
    raw = items[0].pixels.nbytes
    evaluate(items, ["png"], workers=1)  # warm: the libraries' own memory is not the image's
    with PeakMemory() as memory:
        table = evaluate(items, ["jpeg=50", "png"], workers=1)
    assert memory.above <= 10 * raw, f"{memory.above / raw:.1f}x the image's bytes"
    lossless = table[table["method"] == "png"].iloc[0]
    assert lossless["ssim"] == 1.0 and lossless["ms_ssim"] == 1.0
    lossy = table[table["method"] == "jpeg"].iloc[0]
    assert 0.5 < lossy["ssim"] < 1.0 and 20 < lossy["psnr"] < 60


def test_an_image_that_cannot_fit_is_refused_before_any_work(monkeypatch, capsys, large,
                                                            tmp_path):  # fmt: skip
    import benchmarks.runs.codec_runs as codec_runs

    folder, _ = large

    class Tight:
        available = 100 * 2**20  # 100 MB free: the image needs about 8 x 17 MB

    monkeypatch.setattr(codec_runs.psutil, "virtual_memory", lambda: Tight)
    out = str(tmp_path / "o")
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", f"folder:{folder}",
                           "-c", "jpeg=50", "--workers", "1", "--out", out)  # fmt: skip
    assert_one_line_error(code, err, "large (2400x2400x3) needs about 0.1 GB")
    assert not (tmp_path / "o").exists()
