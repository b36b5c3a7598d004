"""The weight-free full-reference metrics of JPEG AI's common test conditions, from ``piq``
(0.8.0): VIFp, FSIM, IW-SSIM, GMSD, MS-GMSD and HaarPSI.

Each is piq's function on the 8-bit images scaled to [0, 1] (``data_range=1``); colour is
handled as piq does (each description says how) and a gray image is passed as one channel.
Each metric's ``min_side`` is the smallest side piq computes it for (tested against piq).
NLPD and VMAF, also in the conditions, are not offered: piq has no NLPD, and VMAF is a video
metric computed by Netflix's libvmaf (a C library driven through ffmpeg on YUV), which no
kept Python package here wraps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from benchmarks.metrics import Metric, register_metric


class _PiqMetric(Metric):
    function: ClassVar[str]  # the piq function's name
    options: ClassVar[dict[str, Any]] = {}

    def prepare(self, original: np.ndarray) -> Any:
        from benchmarks.metrics.tensors import unit_tensor

        return unit_tensor(original)

    def score(self, prepared: Any, reconstruction: np.ndarray) -> dict[str, float]:
        import piq
        import torch

        from benchmarks.metrics.tensors import unit_tensor

        with torch.no_grad():
            value = getattr(piq, self.function)(
                prepared, unit_tensor(reconstruction), data_range=1.0, **self.options
            )
        (column,) = self.columns
        return {column: float(value)}


@register_metric("vifp")
class VIFp(_PiqMetric):
    """Visual information fidelity, pixel domain (Sheikh & Bovik 2006): on luminance Y."""

    columns = {"vifp": "higher"}
    min_side = 41
    function = "vif_p"
    bytes_per_pixel = 280  # measured on Kodak: 228


@register_metric("fsim")
class FSIM(_PiqMetric):
    """Feature similarity (Zhang et al. 2011), FSIMc on colour (YIQ chroma), FSIM on gray."""

    columns = {"fsim": "higher"}
    min_side = 2
    function = "fsim"
    bytes_per_pixel = 360  # measured on Kodak: 297


@register_metric("iw-ssim")
class IWSSIM(_PiqMetric):
    """Information-weighted SSIM (Wang & Li 2011), five scales: on luminance Y."""

    columns = {"iw_ssim": "higher"}
    min_side = 161
    function = "information_weighted_ssim"
    bytes_per_pixel = 340  # measured on Kodak: 281


@register_metric("gmsd")
class GMSD(_PiqMetric):
    """Gradient magnitude similarity deviation (Xue et al. 2014): on luminance Y."""

    columns = {"gmsd": "lower"}
    min_side = 2
    function = "gmsd"
    bytes_per_pixel = 90  # measured on Kodak: 73


@register_metric("ms-gmsd")
class MSGMSD(_PiqMetric):
    """Multi-scale GMSD (Zhang et al. 2017), four scales: on luminance Y."""

    columns = {"ms_gmsd": "lower"}
    min_side = 17
    function = "multi_scale_gmsd"
    bytes_per_pixel = 100  # measured on Kodak: 80


@register_metric("haarpsi")
class HaarPSI(_PiqMetric):
    """Haar wavelet perceptual similarity (Reisenhofer et al. 2018): Y and YIQ chroma."""

    columns = {"haarpsi": "higher"}
    min_side = 16
    function = "haarpsi"
    bytes_per_pixel = 170  # measured on Kodak: 137
