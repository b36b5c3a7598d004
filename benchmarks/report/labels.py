"""What the report calls things: rate kinds, metric axes and the built-in quality columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RATE_KIND_LABELS = {
    "coded": "real coded bytes",
    "kl": "KL bound",
    "estimate": "entropy estimate",
    "fixed": "fixed-length code",
    "prior": "code length under learned prior",
}
METRIC_LABELS = {
    "psnr": "PSNR [dB]",
    "ms_ssim_db": "MS-SSIM [dB]  (−10·log10(1 − MS-SSIM))",
    "ssim": "SSIM",
    "bits_per_dim": "bits/dim",
}
# The quality axes every report draws and tabulates: PSNR and MS-SSIM in dB.
BUILT_IN_AXES = ("psnr", "ms_ssim_db")
BUILT_IN_COLUMNS = {
    "mse", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "bit_error_rate",
}  # fmt: skip


def extra_axes(attrs: Mapping[str, Any]) -> dict[str, str]:
    """``{column: "higher" | "lower"}`` of the metric columns a table records beyond the
    built-in ones (``frame.attrs["metric_columns"]``, written by the run that scored them):
    each gets its RD figure and BD-rate."""
    columns = attrs.get("metric_columns") or {}
    return {c: info["better"] for c, info in columns.items() if c not in BUILT_IN_COLUMNS}


def axis_label(column: str, better: str = "higher") -> str:
    return METRIC_LABELS.get(column, f"{column} ({better} is better)")
