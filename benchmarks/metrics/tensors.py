"""8-bit images as the float tensors the torch metrics take."""

from __future__ import annotations

import numpy as np
import torch


def unit_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H x W (x C) -> float32 1 x C x H x W in [0, 1] (gray stays one channel)."""
    array = image if image.ndim == 3 else image[:, :, None]
    copy = np.array(array)  # writable, as torch wants
    return torch.from_numpy(copy).permute(2, 0, 1)[None].float() / 255


def rgb_tensor(image: np.ndarray) -> torch.Tensor:
    """As :func:`unit_tensor`, with a gray image repeated on three channels (networks
    trained on RGB)."""
    tensor = unit_tensor(image)
    return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor
