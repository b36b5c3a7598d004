"""SSIM and MS-SSIM of many decodings against one original, sharing the original's work.

The definitions are exactly those of ``pytorch_msssim`` (Wang et al. 2004 for SSIM, Wang et
al. 2003 for MS-SSIM): 11-tap Gaussian window with sigma 1.5 applied separably without
padding, K = (0.01, 0.03), per-channel means, five scales with weights (0.0448, 0.2856,
0.3001, 0.2363, 0.1333), 2x2 average pooling between scales, and ReLU on the contrast terms.
The tests check agreement with ``pytorch_msssim`` and scikit-image.

Why not call ``pytorch_msssim`` directly: a sweep compares ~20 decodings with each original,
and the original's filtered statistics (mean and second moment at every scale) are the same
each time. Computing them once, and SSIM together with the first MS-SSIM scale, makes the
metrics about three times faster -- they dominate a classical-codec sweep.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WINDOW, SIGMA = 11, 1.5
K1, K2 = 0.01, 0.03
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = (WINDOW - 1) * 2 ** (len(MS_WEIGHTS) - 1) + 1  # 161 px


def _gaussian_window() -> torch.Tensor:
    coords = torch.arange(WINDOW, dtype=torch.float32) - WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * SIGMA**2))
    return g / g.sum()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxW or HxWxC -> float32 (1, C, H, W) on the 0..255 scale."""
    array = image[..., None] if image.ndim == 2 else image
    return torch.tensor(array, dtype=torch.float32).permute(2, 0, 1)[None]


class StructuralSimilarity:
    """``StructuralSimilarity(original)(decoded) -> (ssim, ms_ssim)``; MS-SSIM is NaN for
    images whose shorter side is under 161 px."""

    def __init__(self, original: np.ndarray, data_range: float = 255.0) -> None:
        x = to_tensor(original)
        self.channels = x.shape[1]
        self.c1, self.c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
        self.window = _gaussian_window()
        self.multiscale = min(original.shape[:2]) >= MS_SSIM_MIN_SIDE
        self.scales = []  # per scale: (original, its local mean, its local second moment)
        with torch.inference_mode():
            for scale in range(len(MS_WEIGHTS) if self.multiscale else 1):
                mean, square = self._blur(torch.cat([x, x * x], 1)).chunk(2, dim=1)
                self.scales.append((x, mean, square))
                if scale < len(MS_WEIGHTS) - 1:
                    x = self._downsample(x)

    def _blur(self, maps: torch.Tensor) -> torch.Tensor:
        n = maps.shape[1]
        for kernel in (self.window.view(1, 1, 1, -1), self.window.view(1, 1, -1, 1)):
            maps = F.conv2d(maps, kernel.expand(n, 1, *kernel.shape[2:]), groups=n)
        return maps

    @staticmethod
    def _downsample(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=2, padding=[s % 2 for s in x.shape[2:]])

    def __call__(self, decoded: np.ndarray) -> tuple[float, float]:
        y = to_tensor(decoded)
        contrast = []
        with torch.inference_mode():
            for scale, (x, mu_x, xx) in enumerate(self.scales):
                mu_y, yy, xy = self._blur(torch.cat([y, y * y, x * y], 1)).chunk(3, dim=1)
                var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
                cs_map = (2 * cov + self.c2) / (var_x + var_y + self.c2)
                luminance = (2 * mu_x * mu_y + self.c1) / (mu_x**2 + mu_y**2 + self.c1)
                ssim_per_channel = (luminance * cs_map).flatten(2).mean(-1)
                if scale == 0:
                    ssim = float(ssim_per_channel.mean())
                if scale < len(self.scales) - 1:
                    contrast.append(torch.relu(cs_map.flatten(2).mean(-1)))
                    y = self._downsample(y)
            if not self.multiscale:
                return ssim, float("nan")
            terms = torch.stack([*contrast, torch.relu(ssim_per_channel)])
            weights = torch.tensor(MS_WEIGHTS).view(-1, 1, 1)
            return ssim, float(torch.prod(terms**weights, dim=0).mean())
