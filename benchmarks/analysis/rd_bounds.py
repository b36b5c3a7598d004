"""Rate–distortion functions to draw under the trained points: closed forms and Blahut–Arimoto.

All rates are in nats (per source vector for the Gaussian, per symbol for discrete sources).

* :func:`gaussian_rd`: a memoryless Gaussian source with per-dimension variances s_i^2 under
  squared error summed over dimensions, by reverse water-filling (Cover & Thomas 2006,
  Thm. 10.3.3): D_i = min(theta, s_i^2) with sum_i D_i = D, and R(D) = sum_i 1/2 log(s_i^2/D_i).
* :func:`bernoulli_rd`: R(D) = h(p) - h(D) for D < min(p, 1 - p) under Hamming distortion.
* :func:`uniform_hamming_rd`: R(D) = log m - h(D) - D log(m - 1) for a uniform m-ary source.
* :func:`blahut_arimoto`: R(D) of any finite source and distortion matrix, one point per
  slope s < 0 (Blahut 1972; Arimoto 1972), with its own convergence check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.errors import BenchError


def _variances(variances: Sequence[float]) -> np.ndarray:
    v = np.asarray(variances, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise BenchError(f"variances must be a non-empty list of positive numbers, got {v}")
    return v


def water_level(variances: Sequence[float], distortion: float) -> float:
    """The reverse water-filling level theta with sum_i min(theta, s_i^2) = D."""
    v = _variances(variances)
    if not distortion > 0:
        raise BenchError(f"distortion must be > 0, got {distortion}")
    if distortion >= v.sum():
        return float(v.max())
    low, high = 0.0, float(v.max())
    for _ in range(200):  # bisection to float precision
        mid = 0.5 * (low + high)
        low, high = (mid, high) if np.minimum(mid, v).sum() < distortion else (low, mid)
    return 0.5 * (low + high)


def gaussian_rd(variances: Sequence[float], distortion: float) -> float:
    """R(D) in nats of N(0, diag(variances)) under total squared error D."""
    v = _variances(variances)
    theta = water_level(v, distortion)
    return float(0.5 * np.log(v / np.minimum(theta, v)).sum())


def gaussian_dr(variances: Sequence[float], rate: float) -> float:
    """D(R): the least total squared error at ``rate`` nats (the inverse of gaussian_rd)."""
    v = _variances(variances)
    if rate <= 0:
        return float(v.sum())
    low, high = 0.0, float(v.max())  # rate falls as theta rises
    for _ in range(200):
        theta = 0.5 * (low + high)
        r = 0.5 * np.log(v / np.minimum(theta, v)).sum()
        low, high = (theta, high) if r > rate else (low, theta)
    return float(np.minimum(0.5 * (low + high), v).sum())


def binary_entropy(p: float | np.ndarray) -> float | np.ndarray:
    """h(p) in nats, with h(0) = h(1) = 0."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    h = np.where((p <= 0) | (p >= 1), 0.0, h)
    return float(h) if h.ndim == 0 else h


def bernoulli_rd(p: float, distortion: float) -> float:
    """R(D) = h(p) - h(D) nats per symbol for D < min(p, 1 - p), else 0."""
    if not 0 < p < 1:
        raise BenchError(f"p must be in (0, 1), got {p}")
    if distortion >= min(p, 1 - p):
        return 0.0
    return float(binary_entropy(p) - binary_entropy(max(distortion, 0.0)))


def uniform_hamming_rd(m: int, distortion: float) -> float:
    """R(D) of a uniform source on m symbols under Hamming distortion, nats per symbol."""
    if distortion >= 1 - 1 / m:
        return 0.0
    d = max(distortion, 0.0)
    return float(math.log(m) - binary_entropy(d) - d * math.log(m - 1))


@dataclass(frozen=True)
class RDPoint:
    slope: float  # s < 0: the slope dR/dD of the curve at this point
    distortion: float
    rate: float  # nats
    iterations: int


def blahut_arimoto(
    source: Sequence[float],
    distortion: np.ndarray,
    slope: float,
    *,
    tol: float = 1e-12,
    max_iter: int = 100_000,
) -> RDPoint:
    """One point of R(D) for a source p(x) and distortion matrix d(x, y) at slope s < 0.

    Iterates q(y|x) ∝ r(y) exp(s d(x, y)), r(y) = sum_x p(x) q(y|x) to a fixed point; the
    rate is I(X; Y) = sum p(x) q(y|x) log(q(y|x) / r(y)). Stops when r changes by < tol.
    """
    p = np.asarray(source, dtype=np.float64)
    d = np.asarray(distortion, dtype=np.float64)
    if p.ndim != 1 or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        raise BenchError("source must be a probability vector")
    if d.shape[0] != len(p) or d.ndim != 2:
        raise BenchError(f"distortion matrix must be {len(p)} x m, got {d.shape}")
    if slope >= 0:
        raise BenchError(f"slope must be negative, got {slope}")
    r = np.full(d.shape[1], 1.0 / d.shape[1])
    kernel = np.exp(slope * (d - d.min(axis=1, keepdims=True)))  # shifted: no underflow
    iterations, change = 0, math.inf
    while change >= tol:
        if iterations == max_iter:
            raise BenchError(f"Blahut–Arimoto did not converge at slope {slope} ({max_iter} steps)")
        q = r * kernel
        q /= q.sum(axis=1, keepdims=True)
        r_new = p @ q
        change, r, iterations = np.abs(r_new - r).max(), r_new, iterations + 1
    joint = p[:, None] * q
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(q / r), 0.0)
    return RDPoint(slope, float((joint * d).sum()), float(terms.sum()), iterations)


def hamming(m: int) -> np.ndarray:
    """The m x m Hamming distortion matrix."""
    return 1.0 - np.eye(m)


def blahut_arimoto_curve(
    source: Sequence[float], distortion: np.ndarray, slopes: Sequence[float]
) -> list[RDPoint]:
    return [blahut_arimoto(source, distortion, s) for s in slopes]


# --- the reference sources of the suite's R(D) experiments (benchmarks/specs/rd_theory.toml)

GAUSSIAN_VARIANCES = (4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
BERNOULLI_P, BERNOULLI_BITS = 0.2, 16


def bernoulli_slopes() -> np.ndarray:
    return -np.geomspace(0.05, 40.0, 60)


def bernoulli_curve(p: float = BERNOULLI_P) -> pd.DataFrame:
    """R(D) of the Bernoulli(p) source by Blahut–Arimoto beside h(p) - h(D)."""
    points = blahut_arimoto_curve([1 - p, p], hamming(2), bernoulli_slopes())
    return pd.DataFrame({
        "slope": [pt.slope for pt in points], "distortion": [pt.distortion for pt in points],
        "rate_ba_nats": [pt.rate for pt in points],
        "rate_closed_form_nats": [bernoulli_rd(p, pt.distortion) for pt in points],
    })  # fmt: skip


def ba_rate_at(curve: pd.DataFrame, distortion: float) -> float:
    """A lower bound on R(D) from Blahut–Arimoto points: R is convex, so every point's
    tangent, R_s + s (D - D_s), lies below it; the highest tangent at D (and 0) is the bound.
    (Interpolating between the points would lie above the curve.)"""
    tangents = curve["rate_ba_nats"] + curve["slope"] * (distortion - curve["distortion"])
    return float(max(tangents.max(), 0.0))
