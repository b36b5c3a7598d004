"""A dataset as one uint8 (N, C, H, W) torch tensor: what training and likelihood
evaluation take (the evaluation path takes named items instead)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.items import DatasetView, load_items, spread
from benchmarks.datasets.mnist import load_array
from benchmarks.datasets.registry import is_image_dataset


def load_pixels(
    dataset: str, split: str, data_dir: Path | None, seed: int = 0, limit: int | None = None
):
    """uint8 (N, C, H, W) torch pixels: the rows of an MNIST-style split, or the items of an
    image dataset, which must share one shape (``kodak:patches=256``, ``embedded:crop=256``;
    ``limit``: spread evenly)."""
    if is_image_dataset(DatasetView.parse(dataset).name):
        items = load_items(dataset, data_dir=data_dir, limit=limit)
        shapes = sorted({item.pixels.shape for item in items})
        if len(shapes) != 1:
            raise DatasetError(
                f"training and eval need images of one shape; {dataset!r} has {len(shapes)} "
                f"({shapes[0]}, ...): add an option such as {dataset}:patches=256"
            )
        array = np.stack([item.pixels for item in items])
        array = array[..., None] if array.ndim == 3 else array
        return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
    array = load_array(dataset, split, data_dir=data_dir, seed=seed)
    array = np.ascontiguousarray(array[spread(len(array), limit)], dtype=np.uint8)
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(1) if tensor.dim() == 3 else tensor
