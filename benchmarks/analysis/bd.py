"""Bjøntegaard deltas between rate–distortion curves (VCEG-M33; the piecewise-cubic
variant of the JVET common test conditions), for a quality measure of either direction.

The rate difference at equal quality does not depend on which way quality improves; the
quality difference at equal rate does, so :func:`bd_quality` takes the measure's direction
and reports a gain as positive ("BD-PSNR" for PSNR, and for LPIPS the reduction).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import PchipInterpolator

from benchmarks.errors import BenchError


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
    return bd_quality(rate_anchor, dist_anchor, rate_test, dist_test, "higher", method)


def bd_quality(
    rate_anchor: np.ndarray,
    dist_anchor: np.ndarray,
    rate_test: np.ndarray,
    dist_test: np.ndarray,
    better: str = "higher",
    method: str = "pchip",
) -> float:
    """Average quality gain of the test curve over the anchor at equal rate, in the
    measure's units: test minus anchor where higher is better, anchor minus test where
    lower is better, so that a better test curve is positive either way."""
    log_a, q_a = np.log(_positive(rate_anchor)), np.asarray(dist_anchor, float)
    log_t, q_t = np.log(_positive(rate_test)), np.asarray(dist_test, float)
    gap = _mean_gap(log_a, q_a, log_t, q_t, "log-rate", method)
    return gap if better == "higher" else -gap


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
