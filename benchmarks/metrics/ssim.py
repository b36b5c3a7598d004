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

Large images (over :data:`TILED_ABOVE` pixels) take another route with the same
definitions, :class:`TiledStructuralSimilarity`: each scale's maps are computed in tiles
(with the window's 10-pixel halo, so every map value is the one the whole image gives),
summed in float64, and the image is pooled to the next scale in row blocks. Memory stays a
few times the image's own bytes (the whole-image route holds dozens of float maps: an
8000 x 8000 image once took 15 GB); the values agree with the whole-image route's to float
rounding (the tests hold them to 1e-6).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WINDOW, SIGMA = 11, 1.5
K1, K2 = 0.01, 0.03
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = (WINDOW - 1) * 2 ** (len(MS_WEIGHTS) - 1) + 1  # 161 px
TILED_ABOVE = 1 << 20  # pixels: larger images take the tiled route (whole: ~80x their bytes)
TILE = 512  # the side of a tile of SSIM's map


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


def structural_similarity(original: np.ndarray) -> StructuralSimilarity | TiledStructuralSimilarity:
    """The route for ``original``: statistics shared across decodings for ordinary images,
    tiles for large ones (:data:`TILED_ABOVE`)."""
    if original.shape[0] * original.shape[1] > TILED_ABOVE:
        return TiledStructuralSimilarity(original)
    return StructuralSimilarity(original)


class TiledStructuralSimilarity(StructuralSimilarity):
    """``(ssim, ms_ssim)`` of decodings against one large original, scale by scale in tiles
    of :data:`TILE` map pixels: the same numbers as :class:`StructuralSimilarity`, in memory
    a few times the image's own. Nothing of the original is kept but the original."""

    def __init__(self, original: np.ndarray, data_range: float = 255.0, tile: int = TILE) -> None:
        self.original, self.tile = original, tile
        self.channels = 1 if original.ndim == 2 else original.shape[2]
        self.c1, self.c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
        self.window = _gaussian_window()
        self.multiscale = min(original.shape[:2]) >= MS_SSIM_MIN_SIDE

    def __call__(self, decoded: np.ndarray) -> tuple[float, float]:
        x, y = _hwc(self.original), _hwc(decoded)
        contrast = []
        for scale in range(len(MS_WEIGHTS) if self.multiscale else 1):
            ssim_c, cs_c = self._means(x, y)  # per channel, float64
            if scale == 0:
                ssim = float(ssim_c.mean())
            if not self.multiscale:
                return ssim, float("nan")
            if scale < len(MS_WEIGHTS) - 1:
                contrast.append(np.maximum(cs_c, 0.0))
                x, y = _pool(x), _pool(y)
        terms = np.stack([*contrast, np.maximum(ssim_c, 0.0)])
        weights = np.asarray(MS_WEIGHTS, dtype=np.float64)[:, None]
        # pytorch_msssim multiplies in float32: so do we, for the same digits
        product = np.prod(terms.astype(np.float32) ** weights.astype(np.float32), axis=0)
        return ssim, float(product.mean())

    def _means(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, the means of the SSIM and contrast-structure maps (valid positions
        only, as the whole-image route), summed tile by tile."""
        rows, cols = x.shape[0] - WINDOW + 1, x.shape[1] - WINDOW + 1
        ssim_sum = np.zeros(self.channels)
        cs_sum = np.zeros(self.channels)
        with torch.inference_mode():
            for r in range(0, rows, self.tile):
                for c in range(0, cols, self.tile):
                    h, w = min(self.tile, rows - r), min(self.tile, cols - c)
                    part = (slice(r, r + h + WINDOW - 1), slice(c, c + w + WINDOW - 1))
                    ssim_map, cs_map = self._maps(_chw(x[part]), _chw(y[part]))
                    ssim_sum += ssim_map.double().sum((0, 2, 3)).numpy()
                    cs_sum += cs_map.double().sum((0, 2, 3)).numpy()
        return ssim_sum / (rows * cols), cs_sum / (rows * cols)

    def _maps(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_x, xx, mu_y, yy, xy = self._blur(torch.cat([x, x * x, y, y * y, x * y], 1)).chunk(
            5, dim=1
        )
        var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
        cs_map = (2 * cov + self.c2) / (var_x + var_y + self.c2)
        luminance = (2 * mu_x * mu_y + self.c1) / (mu_x**2 + mu_y**2 + self.c1)
        return luminance * cs_map, cs_map


def _hwc(image: np.ndarray) -> np.ndarray:
    return image[..., None] if image.ndim == 2 else image


def _chw(block: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).permute(2, 0, 1)[None]


def _pool(image: np.ndarray, rows_per_block: int = 256) -> np.ndarray:
    """``F.avg_pool2d(kernel 2, padding = side % 2)`` of an H x W x C image, as
    :meth:`StructuralSimilarity._downsample` does it to the whole image, in blocks of output
    rows (float32, a quarter of the pixels)."""
    h, w = image.shape[:2]
    pad_h, pad_w = h % 2, w % 2
    out_h, out_w = (h + 2 * pad_h - 2) // 2 + 1, (w + 2 * pad_w - 2) // 2 + 1
    out = np.empty((out_h, out_w, image.shape[2]), dtype=np.float32)
    for o in range(0, out_h, rows_per_block):
        o_end = min(out_h, o + rows_per_block)
        top, bottom = 2 * o - pad_h, 2 * o_end - pad_h  # input rows, padding rows outside
        block = np.zeros((bottom - top, w + 2 * pad_w, image.shape[2]), dtype=np.float32)
        inside = slice(max(top, 0), min(bottom, h))
        block[inside.start - top : inside.stop - top, pad_w : pad_w + w] = image[inside]
        block = block[:, : 2 * out_w]
        out[o:o_end] = block.reshape(o_end - o, 2, out_w, 2, -1).mean(axis=(1, 3))
    return out
