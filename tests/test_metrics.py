"""Metrics against independent references: scikit-image and the bjontegaard package."""

from __future__ import annotations

import math

import bjontegaard
import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from baselines.codec import make_codec
from benchmarks.analysis import bd
from benchmarks.errors import BenchError
from benchmarks.metrics import image as metrics


@pytest.fixture(scope="module")
def pair(kodak_dir):
    original = np.asarray(Image.open(kodak_dir / "kodim05.png"))
    codec = make_codec("jpeg", 30)
    return original, codec.decode(codec.encode(original))


def test_psnr_matches_scikit_image(pair):
    original, decoded = pair
    expected = peak_signal_noise_ratio(original, decoded, data_range=255)
    assert metrics.psnr(original, decoded) == pytest.approx(expected, rel=1e-12)


def test_psnr_identical_is_infinite(pair):
    assert math.isinf(metrics.psnr(pair[0], pair[0]))


def test_ssim_matches_scikit_image_gaussian_settings(pair):
    original, decoded = pair
    expected = structural_similarity(
        original, decoded, channel_axis=2, data_range=255,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert metrics.ssim(original, decoded) == pytest.approx(expected, abs=2e-4)


def test_ssim_on_grayscale_matches_scikit_image(pair):
    original, decoded = pair[0][..., 1], pair[1][..., 1]
    expected = structural_similarity(
        original, decoded, data_range=255,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert metrics.ssim(original, decoded) == pytest.approx(expected, abs=2e-4)


def test_ssim_and_ms_ssim_equal_pytorch_msssim(pair):
    from pytorch_msssim import ms_ssim, ssim

    from benchmarks.metrics.ssim import StructuralSimilarity, to_tensor

    original, decoded = pair
    x, y = to_tensor(original), to_tensor(decoded)
    ours = StructuralSimilarity(original)
    # odd sizes exercise the padded pooling between MS-SSIM scales
    for crop in (np.s_[:, :], np.s_[:333, :501]):
        o, d = original[crop], decoded[crop]
        x, y = to_tensor(o), to_tensor(d)
        ours = StructuralSimilarity(o)
        got_ssim, got_ms = ours(d)
        assert got_ssim == pytest.approx(float(ssim(x, y, data_range=255)), abs=1e-6)
        assert got_ms == pytest.approx(float(ms_ssim(x, y, data_range=255)), abs=1e-6)
    # reusing one original for several decodings gives the same numbers as fresh objects
    codec = make_codec("webp", 20)
    other = codec.decode(codec.encode(original))
    assert ours(other[:333, :501]) == StructuralSimilarity(original[:333, :501])(other[:333, :501])


def test_ms_ssim_db_and_small_images(pair):
    original, decoded = pair
    value = metrics.ms_ssim(original, decoded)
    assert 0.9 < value < 1.0
    assert metrics.ms_ssim_db(value) == pytest.approx(-10 * math.log10(1 - value))
    assert math.isnan(metrics.ms_ssim(original[:100, :100], decoded[:100, :100]))


def test_bpp_is_per_pixel_not_per_channel():
    assert metrics.bits_per_pixel(1000, 100, 80) == 1000 * 8 / 8000


# Two real-looking RD curves (JPEG-like anchor, better test codec), four points each.
RATE_A = np.array([0.35, 0.6, 1.0, 1.7])
PSNR_A = np.array([28.1, 30.6, 33.2, 36.4])
RATE_B = np.array([0.25, 0.45, 0.8, 1.4])
PSNR_B = np.array([28.6, 31.2, 34.0, 37.1])


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_and_psnr_match_bjontegaard_package(method):
    theirs = "pchip" if method == "pchip" else "cubic"
    expected_rate = bjontegaard.bd_rate(
        RATE_A, PSNR_A, RATE_B, PSNR_B, method=theirs, min_overlap=0
    )
    expected_psnr = bjontegaard.bd_psnr(
        RATE_A, PSNR_A, RATE_B, PSNR_B, method=theirs, min_overlap=0
    )
    assert bd.bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method) == pytest.approx(
        expected_rate, abs=1e-6
    )
    assert bd.bd_psnr(RATE_A, PSNR_A, RATE_B, PSNR_B, method) == pytest.approx(
        expected_psnr, abs=1e-6
    )


def test_bd_rate_hand_worked_example():
    # The test curve is the anchor at exactly half the rate: BD-rate is -50 %, and at equal
    # rate it is better by the anchor's PSNR gain over one halving, a linear 3 dB here.
    rate = np.array([0.25, 0.5, 1.0, 2.0])
    quality = 30 + 3 * np.log2(rate)
    assert bd.bd_rate(rate, quality, rate / 2, quality) == pytest.approx(-50.0)
    assert bd.bd_psnr(rate, quality, rate / 2, quality) == pytest.approx(3.0)


def test_bd_errors():
    with pytest.raises(BenchError, match="do not overlap"):
        bd.bd_rate(RATE_A, PSNR_A, RATE_A * 10, PSNR_A + 20)
    with pytest.raises(BenchError, match="infinite PSNR|finite"):
        bd.bd_rate(RATE_A, np.r_[PSNR_A[:3], np.inf], RATE_B, PSNR_B)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_of_a_lower_is_better_metric(method):
    """A distance (LPIPS-like: lower is better) that falls as PSNR rises: the same curves in
    it give the same BD-rate (the better codec saves bits either way), and a gain at equal
    rate that is positive for the better codec, matched against the bjontegaard package run
    on the negated distance (its convention is higher is better)."""
    dist_a, dist_b = 60.0 - PSNR_A, 60.0 - PSNR_B  # lower is better
    by_psnr = bd.bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method)
    assert bd.bd_rate(RATE_A, dist_a, RATE_B, dist_b, method) == pytest.approx(by_psnr, abs=1e-9)
    gain = bd.bd_quality(RATE_A, dist_a, RATE_B, dist_b, "lower", method)
    theirs = bjontegaard.bd_psnr(RATE_A, -dist_a, RATE_B, -dist_b, method=method, min_overlap=0)
    assert gain == pytest.approx(theirs, abs=1e-6) and gain > 0
    # read the wrong way round, the better codec would look worse: the sign is the direction's
    assert bd.bd_quality(RATE_A, dist_a, RATE_B, dist_b, "higher", method) == pytest.approx(-gain)


def test_the_report_draws_and_deltas_a_plugged_in_lower_is_better_column(tmp_path):
    """A column the table records as lower-is-better gets its own RD figure (through the
    lower envelope) and BD columns against the anchor."""
    from benchmarks.report import render_report
    from benchmarks.results import make_frame

    rows = []
    for method, rates, psnrs in (("jpeg", RATE_A, PSNR_A), ("mine", RATE_B, PSNR_B)):
        for q, (rate, psnr) in enumerate(zip(rates, psnrs, strict=True)):
            rows.append({"dataset": "d", "method": method, "param": "q", "value": q,
                         "rate_kind": "coded", "image": "i", "bpp": rate, "psnr": psnr,
                         "ms_ssim_db": psnr / 2, "distance": 60.0 - psnr, "height": 8,
                         "width": 8, "channels": 3})  # fmt: skip
    frame = make_frame(rows)
    frame.attrs["metric_columns"] = {"distance": {"better": "lower", "metric": "mine"}}
    files = render_report(frame, tmp_path)
    assert (tmp_path / "rd_distance_d.png").exists() and tmp_path / "rd_distance_d.png" in files
    text = (tmp_path / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| mine ") and "jpeg" in line)
    header = next(line for line in text.splitlines() if "BD-rate distance [%]" in line)
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")],
                     strict=True))  # fmt: skip
    assert float(cells["BD-rate distance [%]"]) == pytest.approx(
        bd.bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B),
        abs=0.01,  # printed to 4 digits
    )
    assert float(cells["BD-distance gain"]) > 0


def test_an_image_smaller_than_the_ssim_window_gets_nan_not_a_traceback(
    monkeypatch, capsys, tmp_path
):
    """SSIM needs an 11 x 11 window: a smaller image's SSIM columns are NaN (as MS-SSIM's are
    under 161 px), its PSNR is still measured, and the run completes."""
    from conftest import run_cli
    from PIL import Image

    from benchmarks.metrics import DEFAULT, Scorer

    tiny = np.arange(9, dtype=np.uint8).reshape(3, 3) * 20
    scored = Scorer(DEFAULT, tiny, binary=False)(tiny[::-1].copy())
    assert math.isnan(scored["ssim"]) and math.isnan(scored["ms_ssim"])
    assert math.isfinite(scored["psnr"])
    folder = tmp_path / "tiny"
    folder.mkdir()
    Image.fromarray(tiny).save(folder / "three.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "one.png")
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", f"folder:{folder}",
                           "-c", "jpeg=50", "-c", "png", "--workers", "1",
                           "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, err
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert rows["ssim"].isna().all() and rows["psnr"].notna().all()


@pytest.mark.parametrize("shape", [(331, 517), (400, 300, 3), (170, 211)])
def test_tiled_ssim_gives_the_whole_image_numbers(shape):
    """Large images take the tiled route (each tile with the window's halo, scales pooled in
    row blocks); small tiles here force it on small images, against the whole-image route."""
    from benchmarks.metrics.ssim import StructuralSimilarity, TiledStructuralSimilarity

    rng = np.random.default_rng(1)
    smooth = np.cumsum(np.cumsum(rng.normal(size=shape), 0), 1)
    original = np.uint8(255 * (smooth - smooth.min()) / np.ptp(smooth))
    decoded = np.clip(original + rng.integers(-12, 13, shape), 0, 255).astype(np.uint8)
    whole = StructuralSimilarity(original)(decoded)
    tiled = TiledStructuralSimilarity(original, tile=48)(decoded)
    assert tiled == pytest.approx(whole, abs=1e-6)
    assert metrics.mse(original, decoded, chunk=1000) == metrics.mse(original, decoded)
