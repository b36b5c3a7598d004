"""Learned perceptual distances: LPIPS v0.1 (AlexNet and VGG heads; Zhang et al. 2018) and
DISTS (Ding et al. 2020), from the ``lpips`` (0.1.4) and ``DISTS-pytorch`` (0.1) packages.

The packages build their networks; the weights come from :mod:`benchmarks.metrics.weights`
(checked safetensors, no pickle). Each metric keeps the original's features from ``prepare``
and runs the network once per reconstruction. Inputs are 8-bit images scaled to [0, 1]; a
gray image is expanded to three equal channels, as the networks take RGB. The tests hold both
to the official values of the TID2013 calibration pairs (``iqa-pairs``) and to the packages'
own ``forward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.metrics import Metric, register_metric
from benchmarks.metrics.weights import BACKBONES, DISTS_WEIGHTS, HEADS, check_available


class _NetworkMetric(Metric):
    network: str
    files: tuple[str, ...]

    @classmethod
    def check(cls) -> None:
        check_available(cls.name, cls.files)

    def prepare(self, original: np.ndarray) -> Any:
        from benchmarks.metrics.networks import network

        net = network(self.network)
        return net, net.features(original)

    def score(self, prepared: Any, reconstruction: np.ndarray) -> dict[str, float]:
        net, original = prepared
        (column,) = self.columns
        return {column: net.distance(original, net.features(reconstruction))}


@register_metric("lpips-alex")
class LPIPSAlex(_NetworkMetric):
    """LPIPS v0.1 with AlexNet (0 = identical); gray scored as RGB."""

    columns = {"lpips_alex": "lower"}
    min_side = 31  # AlexNet's second max-pool needs 31 px
    bytes_per_pixel = 170  # measured on Kodak: 141
    network, files = "alex", (BACKBONES["alex"], HEADS["alex"])


@register_metric("lpips-vgg")
class LPIPSVGG(_NetworkMetric):
    """LPIPS v0.1 with VGG16 (0 = identical); gray scored as RGB."""

    columns = {"lpips_vgg": "lower"}
    min_side = 16  # VGG16's fourth max-pool needs 16 px
    bytes_per_pixel = 2000  # measured on Kodak: 1668
    network, files = "vgg", (BACKBONES["vgg"], HEADS["vgg"])


@register_metric("dists")
class DISTS(_NetworkMetric):
    """DISTS, VGG16 structure and texture (0 = identical); gray scored as RGB."""

    columns = {"dists": "lower"}
    min_side = 16  # below it the fifth stage (after four 2x poolings) is under one pixel
    bytes_per_pixel = 2000  # measured on Kodak: 1624
    network, files = "dists", (BACKBONES["vgg"], DISTS_WEIGHTS)
