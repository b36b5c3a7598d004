"""Image-quality and rate metrics, and Bjøntegaard deltas between RD curves.

Conventions (CompressAI's, see docs/metrics.md):
- ``bpp`` = bytes x 8 / (H x W): per pixel, not per channel.
- PSNR is on 8-bit values against the original, per image; averages are taken over images.
- SSIM follows Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03,
  data range 255, mean over channels -- ``pytorch_msssim.ssim``, and scikit-image with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
- MS-SSIM is ``pytorch_msssim.ms_ssim(data_range=255)``; its dB form is -10 log10(1 - v).
  It needs the shorter side to exceed 160 px and is NaN for smaller images.
- Both are computed by ``benchmarks.ssim`` (same definitions, shared work per original),
  which the tests hold to ``pytorch_msssim`` and scikit-image.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import PchipInterpolator

from benchmarks.errors import BenchError
from benchmarks.ssim import StructuralSimilarity


def bits_per_pixel(n_bytes: int, height: int, width: int) -> float:
    return n_bytes * 8.0 / (height * width)


def mse(reference: np.ndarray, decoded: np.ndarray) -> float:
    _check_pair(reference, decoded)
    diff = reference.astype(np.float64) - decoded.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr_from_mse(value: float, data_range: float = 255.0) -> float:
    return math.inf if value == 0 else 10.0 * math.log10(data_range**2 / value)


def psnr(reference: np.ndarray, decoded: np.ndarray, data_range: float = 255.0) -> float:
    return psnr_from_mse(mse(reference, decoded), data_range)


def ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    _check_pair(reference, decoded)
    return StructuralSimilarity(reference)(decoded)[0]


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    _check_pair(reference, decoded)
    return StructuralSimilarity(reference)(decoded)[1]


def ms_ssim_db(value: float) -> float:
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def bit_error_rate(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Fraction of pixels that differ: the distortion of binary data."""
    _check_pair(reference, decoded)
    return float(np.mean(reference != decoded))


class ImageMetrics:
    """Every distortion metric of decoded images against one original, computed as
    ``ImageMetrics(original)(decoded)``; the original's share of the work is done once.

    8-bit images (gray or colour) get MSE, PSNR, SSIM and MS-SSIM; binary images
    (``binary=True``, values 0 and 1) get the bit error rate instead.
    """

    def __init__(self, reference: np.ndarray, binary: bool = False) -> None:
        self.reference, self.binary = reference, binary
        self.structural = None if binary else StructuralSimilarity(reference)

    def __call__(self, decoded: np.ndarray) -> dict[str, float]:
        if self.structural is None:
            return {"bit_error_rate": bit_error_rate(self.reference, decoded)}
        error = mse(self.reference, decoded)
        ssim_value, msssim = self.structural(decoded)
        return {
            "mse": error,
            "psnr": psnr_from_mse(error),
            "ssim": ssim_value,
            "ms_ssim": msssim,
            "ms_ssim_db": ms_ssim_db(msssim),
        }


def image_metrics(reference: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """All distortion metrics of one decoded image against its original."""
    return ImageMetrics(reference)(decoded)


def _check_pair(reference: np.ndarray, decoded: np.ndarray) -> None:
    if reference.shape != decoded.shape:
        raise BenchError(f"decoded shape {decoded.shape} differs from original {reference.shape}")


# --- Bjøntegaard deltas (VCEG-M33; piecewise-cubic variant as in JVET common test conditions)


def bd_rate(
    rate_anchor: np.ndarray,
    dist_anchor: np.ndarray,
    rate_test: np.ndarray,
    dist_test: np.ndarray,
    method: str = "pchip",
) -> float:
    """Average rate difference (%) of the test curve against the anchor at equal quality.

    Negative means the test codec needs fewer bits. Rates are interpolated in log space as a
    function of quality over the overlapping quality interval.
    """
    log_a, q_a = np.log(_positive(rate_anchor)), np.asarray(dist_anchor, float)
    log_t, q_t = np.log(_positive(rate_test)), np.asarray(dist_test, float)
    return (math.exp(_mean_gap(q_a, log_a, q_t, log_t, "quality", method)) - 1.0) * 100.0


def bd_psnr(
    rate_anchor: np.ndarray,
    dist_anchor: np.ndarray,
    rate_test: np.ndarray,
    dist_test: np.ndarray,
    method: str = "pchip",
) -> float:
    """Average quality difference (dB) of the test curve against the anchor at equal rate."""
    log_a, q_a = np.log(_positive(rate_anchor)), np.asarray(dist_anchor, float)
    log_t, q_t = np.log(_positive(rate_test)), np.asarray(dist_test, float)
    return _mean_gap(log_a, q_a, log_t, q_t, "log-rate", method)


def _mean_gap(
    x_a: np.ndarray, y_a: np.ndarray, x_t: np.ndarray, y_t: np.ndarray, what: str, method: str
) -> float:
    """Mean of y_test(x) - y_anchor(x) over the x range both curves cover."""
    low, high = _overlap(x_a, x_t, what)
    return (_integral(x_t, y_t, low, high, method) - _integral(x_a, y_a, low, high, method)) / (
        high - low
    )


def _positive(rates: np.ndarray) -> np.ndarray:
    rates = np.asarray(rates, float)
    if np.any(~np.isfinite(rates)) or np.any(rates <= 0):
        raise BenchError("BD metrics need positive, finite rates")
    return rates


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    low, high = max(a.min(), b.min()), min(a.max(), b.max())
    if not high > low:
        raise BenchError(f"RD curves do not overlap in {what}; BD metrics are undefined")
    return float(low), float(high)


def _integral(x: np.ndarray, y: np.ndarray, low: float, high: float, method: str) -> float:
    """Integral over [low, high] of the curve y(x) fitted through the points."""
    if len(x) < 4 and method == "cubic":
        raise BenchError("cubic BD fit needs at least 4 points per curve")
    if len(x) < 2:
        raise BenchError("BD metrics need at least 2 points per curve")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        raise BenchError("BD metrics need finite values (lossless points have infinite PSNR)")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise BenchError("RD curve is not strictly monotonic; BD metrics are undefined")
    if method == "cubic":
        poly = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(poly, high) - np.polyval(poly, low))
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(low, high))
    raise BenchError(f"unknown BD interpolation '{method}' (use 'pchip' or 'cubic')")
