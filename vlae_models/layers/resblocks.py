"""Small convolutional building blocks shared by the VAE, VQ-VAE and hierarchical VAE.

The images are small (28x28 MNIST by default), so every model works at 1/4 resolution:
two stride-2 convolutions down (28 -> 14 -> 7) and one 4x sub-pixel convolution up
(7 -> 28). Any size divisible by 4 works unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlae_models.errors import ModelError


def bottleneck_layers(in_ch: int, mid: int, out_ch: int) -> nn.Sequential:
    """Pre-activation 1x1 -> 3x3 -> 1x1 convolutions, ``in_ch -> mid -> mid -> out_ch``."""
    return nn.Sequential(
        nn.SiLU(),
        nn.Conv2d(in_ch, mid, 1),
        nn.SiLU(),
        nn.Conv2d(mid, mid, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(mid, out_ch, 1),
    )


class ResBlock(nn.Module):
    """Pre-activation bottleneck residual block: x + conv1x1(conv3x3(conv1x1(x))).

    The bottleneck (``width -> width // 4 -> width``) is VDVAE's (Child 2021) and keeps the
    3x3 convolution cheap. With ``zero_init`` the last convolution starts at zero, so the block
    starts as the identity, which keeps deep stacks stable at initialisation.
    """

    def __init__(self, width: int, zero_init: bool = True) -> None:
        super().__init__()
        self.net = bottleneck_layers(width, max(width // 4, 4), width)
        if zero_init:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class Bottleneck(nn.Module):
    """Non-residual bottleneck ``in -> mid -> out`` used for the prior/posterior heads."""

    def __init__(self, in_ch: int, mid: int, out_ch: int) -> None:
        super().__init__()
        self.net = bottleneck_layers(in_ch, mid, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def down_stem(in_channels: int, width: int, n_res: int = 1) -> nn.Sequential:
    """Image (C, H, W) -> features (width, H/4, W/4): two stride-2 convolutions + res blocks."""
    half = max(width // 2, 8)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, half, 4, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(half, width, 4, stride=2, padding=1),
    ]
    layers += [ResBlock(width) for _ in range(n_res)]
    return nn.Sequential(*layers)


def up_stem(width: int, out_channels: int, n_res: int = 1) -> nn.Sequential:
    """Features (width, H/4, W/4) -> likelihood parameters (out_channels, H, W).

    The upsampling is one sub-pixel convolution (Shi et al. 2016): a 3x3 convolution at the
    low resolution to ``16 * out_channels`` channels, then ``PixelShuffle(4)``. On a CPU this
    is several times faster than two transposed convolutions, which matters for importance
    sampling, where the decoder runs k times per image.
    """
    layers: list[nn.Module] = [ResBlock(width) for _ in range(n_res)]
    layers += [
        nn.SiLU(),
        nn.Conv2d(width, 16 * out_channels, 3, padding=1),
        nn.PixelShuffle(4),
    ]
    return nn.Sequential(*layers)


def check_image_shape(x: Tensor, channels: int, size: int, model: str) -> None:
    """Raise a clear error for inputs the model was not configured for."""
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ModelError(
            f"{model} expects input (B, {channels}, {size}, {size}), got {tuple(x.shape)}; "
            "set in_channels / image_size in the model config"
        )
    if not torch.is_floating_point(x):
        raise ModelError(f"{model} expects float input in [0, 1]; use to_model_input first")
