"""The opt-in metrics: LPIPS and DISTS from their packages with the shared weights, held to
the official values of the TID2013 calibration pairs; the piq set against piq's own size
limits and ideal values; every metric ordered by JPEG quality on Kodak; missing or corrupt
weights refused in one line before any work."""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, require_subdir, run_cli
from PIL import Image

from benchmarks import evaluate, load_items
from benchmarks.metrics import METRICS, Scorer, metric_names

NETWORKS = ("lpips-alex", "lpips-vgg", "dists")
PIQ = ("vifp", "fsim", "iw-ssim", "gmsd", "ms-gmsd", "haarpsi")
IDEAL = {"higher": 1.0, "lower": 0.0}


@pytest.fixture(autouse=True)
def _weights(weights_dir, monkeypatch):
    monkeypatch.setenv("VLAE_BENCH_WEIGHTS", str(weights_dir))


@pytest.fixture(scope="module")
def iqa_pairs(data_root):
    """{pair: (reference, distorted, {metric column: official value})} from iqa-pairs."""
    folder = require_subdir(data_root, "iqa-pairs")
    rows = re.findall(r"^\| (I\d+) \| ([\d.]+) \| ([\d.]+) \|$", (folder / "SOURCE.md").read_text(),
                      re.M)  # fmt: skip
    assert rows, "the calibration table of iqa-pairs/SOURCE.md"
    read = lambda kind, pair: np.asarray(Image.open(folder / kind / f"{pair}.bmp").convert("RGB"))  # noqa: E731
    return {pair: (read("ref", pair), read("dist", pair),
                   {"lpips_alex": float(alex), "dists": float(dists)})
            for pair, alex, dists in rows}  # fmt: skip


def test_lpips_and_dists_give_the_official_calibration_values(iqa_pairs):
    for pair, (reference, distorted, official) in iqa_pairs.items():
        scored = Scorer(("lpips-alex", "dists"), reference, binary=False)(distorted)
        for column, value in official.items():
            assert round(scored[column], 4) == value, (pair, column, scored[column])


def test_the_split_networks_equal_the_packages_forward(iqa_pairs):
    """The original's features are kept between reconstructions: the distances equal the
    packages' own one-call forward."""
    from benchmarks.metrics.networks import network
    from benchmarks.metrics.tensors import rgb_tensor

    reference, distorted, _ = iqa_pairs["I04"]
    reference, distorted = reference[:96, :128], distorted[:96, :128]
    for name in ("alex", "vgg", "dists"):
        net = network(name)
        split = net.distance(net.features(reference), net.features(distorted))
        x, y = rgb_tensor(reference), rgb_tensor(distorted)
        with torch.no_grad():
            whole = net.model(x, y) if name == "dists" else net.model(x, y, normalize=True)
        assert split == pytest.approx(float(whole), rel=1e-5, abs=1e-7), name


def test_each_metric_starts_at_its_stated_side():
    """An image one pixel smaller than ``min_side`` is refused by the library (so the
    metric gives NaN instead), and one at ``min_side`` is scored."""
    rng = np.random.default_rng(0)
    for name in NETWORKS + PIQ:
        metric = METRICS[name]()
        side = metric.min_side
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        assert math.isfinite(metric.score(metric.prepare(image), image[::-1].copy())
                             [next(iter(metric.columns))]), name  # fmt: skip
        if side > 2 and name != "dists":
            small = image[: side - 1, : side - 1]
            with pytest.raises(Exception):  # noqa: B017 - each library words it its own way
                metric.score(metric.prepare(small), small[::-1].copy())
        tiny = rng.integers(0, 256, (side - 1, side + 5, 3), dtype=np.uint8)
        values = Scorer((name,), tiny, binary=False)(tiny)
        assert all(math.isnan(values[c]) for c in metric.columns), name


def test_identity_gives_each_metrics_ideal_value(kodak_dir):
    image = np.asarray(Image.open(kodak_dir / "kodim23.png"))[100:270, 200:370]
    scored = Scorer(metric_names(NETWORKS + PIQ), image, binary=False)(image)
    for name in NETWORKS + PIQ:
        for column, better in METRICS[name].columns.items():
            assert scored[column] == pytest.approx(IDEAL[better], abs=1e-5), column


def test_a_gray_image_is_scored_as_three_equal_channels(kodak_dir):
    gray = np.asarray(Image.open(kodak_dir / "kodim23.png").convert("L"))[100:164, 200:264]
    noisy = np.clip(gray + np.random.default_rng(1).normal(0, 12, gray.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    as_gray = Scorer(("lpips-alex",), gray, binary=False)(noisy)["lpips_alex"]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    as_rgb = Scorer(("lpips-alex",), rgb, binary=False)(np.repeat(noisy[:, :, None], 3, 2))
    assert as_gray == pytest.approx(as_rgb["lpips_alex"], rel=1e-6)


def test_every_metric_orders_jpeg_qualities_on_kodak(kodak_dir):
    """JPEG at quality 5, 30 and 90 on a Kodak crop: every metric ranks them that way."""
    items = load_items("kodak:crop=176", data_dir=kodak_dir.parent, limit=1)
    table = evaluate(items, ["jpeg=5,30,90"], metrics=NETWORKS + PIQ, workers=1)
    table = table.sort_values("value")
    for name in NETWORKS + PIQ:
        for column, better in METRICS[name].columns.items():
            values = table[column].to_numpy()
            ordered = np.diff(values) > 0 if better == "higher" else np.diff(values) < 0
            assert ordered.all(), (column, values)


def test_missing_weights_offline_are_one_line_before_any_work(monkeypatch, capsys, tmp_path,
                                                              kodak3):  # fmt: skip
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setenv("VLAE_BENCH_OFFLINE", "1")
    out = tmp_path / "o"
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", "kodak", "--data-dir",
                           str(kodak3), "-c", "jpeg=50", "--metrics", "dists", "--weights-dir",
                           str(empty), "--out", str(out))  # fmt: skip
    assert_one_line_error(code, err, "metric 'dists' needs vgg16_features.safetensors, "
                          "dists_alpha_beta.safetensors in")  # fmt: skip
    assert not out.exists()


def test_a_corrupt_weights_file_is_refused(weights_dir, tmp_path, monkeypatch):
    from benchmarks.metrics.weights import WeightsError, load

    folder = tmp_path / "weights"
    folder.mkdir()
    name = "lpips_v0.1_alex_lin.safetensors"
    source = weights_dir / "perceptual" / name
    data = bytearray((source if source.exists() else weights_dir / name).read_bytes())
    data[-1] ^= 1
    (folder / name).write_bytes(bytes(data))
    monkeypatch.setenv("VLAE_BENCH_WEIGHTS", str(folder))
    with pytest.raises(WeightsError, match="SHA-256"):
        load(name, fallback=lambda: shutil.rmtree(folder))  # the fallback is never reached
    assert (folder / name).exists()


def test_a_networks_memory_is_counted_before_any_work(monkeypatch, capsys, tmp_path, kodak3):
    """LPIPS-VGG holds ~1.7 kB a pixel: with 400 MB free a Kodak image fits PSNR and SSIM
    but not it, and the run is refused before it starts."""
    import benchmarks.runs.codec_runs as codec_runs

    class Tight:
        available = 400 * 2**20

    monkeypatch.setattr(codec_runs.psutil, "virtual_memory", lambda: Tight)
    items = load_items("kodak", data_dir=kodak3, limit=1)
    codec_runs.check_memory(items, 1, metric_names(None))  # the default set fits
    out = tmp_path / "o"
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", "kodak", "--data-dir",
                           str(kodak3), "--limit", "1", "-c", "jpeg=50", "--metrics",
                           "lpips-vgg", "--workers", "1", "--out", str(out))  # fmt: skip
    assert_one_line_error(code, err, "kodim01 (512x768x3) needs about 0.7 GB")
    assert not out.exists()
