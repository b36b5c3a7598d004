"""The built-in image metrics: ``psnr`` (MSE and PSNR), ``ssim`` (SSIM and MS-SSIM) and
``bit-error-rate`` (binary images), and the plain functions behind them.

Conventions (CompressAI's, see docs/metrics.md):
- ``bpp`` = bytes x 8 / (H x W): per pixel, not per channel.
- PSNR is on 8-bit values against the original, per image; averages are taken over images.
- SSIM follows Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03,
  data range 255, mean over channels -- ``pytorch_msssim.ssim``, and scikit-image with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
- MS-SSIM is ``pytorch_msssim.ms_ssim(data_range=255)``; its dB form is -10 log10(1 - v).
  It needs the shorter side to exceed 160 px and is NaN for smaller images.
- Both are computed by ``benchmarks.metrics.ssim`` (same definitions, shared work per original),
  which the tests hold to ``pytorch_msssim`` and scikit-image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.errors import BenchError
from benchmarks.metrics import Metric, register_metric


def bits_per_pixel(n_bytes: int, height: int, width: int) -> float:
    return n_bytes * 8.0 / (height * width)


def mse(reference: np.ndarray, decoded: np.ndarray, chunk: int = 1 << 20) -> float:
    """Mean squared error on the 8-bit values, summed exactly in integers a chunk of samples
    at a time (a large image never needs float copies of itself)."""
    _check_pair(reference, decoded)
    a, b = reference.reshape(-1), decoded.reshape(-1)
    total = 0
    for start in range(0, a.size, chunk):
        diff = a[start : start + chunk].astype(np.int64) - b[start : start + chunk]
        total += int(np.dot(diff, diff))
    return total / a.size if a.size else math.nan


def psnr_from_mse(value: float, data_range: float = 255.0) -> float:
    return math.inf if value == 0 else 10.0 * math.log10(data_range**2 / value)


def psnr(reference: np.ndarray, decoded: np.ndarray, data_range: float = 255.0) -> float:
    return psnr_from_mse(mse(reference, decoded), data_range)


def ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    _check_pair(reference, decoded)
    return SSIM().prepare(reference)(decoded)[0]


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    _check_pair(reference, decoded)
    return SSIM().prepare(reference)(decoded)[1]


def ms_ssim_db(value: float) -> float:
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def bit_error_rate(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Fraction of pixels that differ: the distortion of binary data."""
    _check_pair(reference, decoded)
    return float(np.mean(reference != decoded))


@register_metric("psnr")
class PSNR(Metric):
    """Mean squared error and PSNR on 8-bit values (data range 255), gray or colour."""

    columns = {"mse": "lower", "psnr": "higher"}

    def score(self, prepared: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
        error = mse(prepared, reconstruction)
        return {"mse": error, "psnr": psnr_from_mse(error)}


@register_metric("ssim")
class SSIM(Metric):
    """SSIM (11 x 11 Gaussian window: NaN under 11 px) and MS-SSIM (NaN under 161 px),
    with the original's filtered statistics computed once."""

    columns = {"ssim": "higher", "ms_ssim": "higher", "ms_ssim_db": "higher"}
    min_side = 11  # the side of SSIM's Gaussian window (benchmarks.metrics.ssim.WINDOW)

    def prepare(self, original: np.ndarray) -> Any:
        # torch is imported when SSIM runs, not when metrics are listed (`--list` stays fast)
        from benchmarks.metrics.ssim import structural_similarity

        return structural_similarity(original)

    def score(self, prepared: Any, reconstruction: np.ndarray) -> dict[str, float]:
        ssim_value, msssim = prepared(reconstruction)
        return {"ssim": ssim_value, "ms_ssim": msssim, "ms_ssim_db": ms_ssim_db(msssim)}


@register_metric("bit-error-rate")
class BitErrorRate(Metric):
    """The fraction of pixels that differ: the distortion of binary data."""

    columns = {"bit_error_rate": "lower"}
    data = "binary"

    def score(self, prepared: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
        return {"bit_error_rate": bit_error_rate(prepared, reconstruction)}


def _check_pair(reference: np.ndarray, decoded: np.ndarray) -> None:
    if reference.shape != decoded.shape:
        raise BenchError(f"decoded shape {decoded.shape} differs from original {reference.shape}")
