"""Every dataset as named items, the one input type of the evaluation path.

A dataset is named by ``NAME[:OPTIONS]``:

- ``NAME`` is a registered dataset (``kodak``, ``embedded``, ``mnist``, ``binarized-mnist``,
  ...) or ``folder:PATH``;
- ``OPTIONS`` is a comma list of ``patches=P`` (every non-overlapping P x P tile, the partial
  ones at the right and bottom edges dropped), ``crop=P`` (the centred P x P crop) and
  ``mosaic`` (all items tiled into one image, for coders that gain from a whole split at once).

So ``kodak:patches=64`` scores models trained on 64 x 64 patches and codecs on the same pixels,
and ``binarized-mnist:mosaic`` codes the whole split as one image. MNIST-style arrays take a
split (``test`` by default) and become gray items named ``SPLIT/ROW``, binary for the
binarized variants. ``limit`` keeps the first N files of an image dataset, and N rows spread
evenly over an array split (the binarized-MNIST test split is sorted by digit).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.fetch import data_root_candidates
from benchmarks.datasets.images import NamedImage, load_images
from benchmarks.datasets.mnist import load_array
from benchmarks.datasets.registry import FOLDER_PREFIX, get_spec, is_image_dataset

BINARY_DATASETS = {"binarized-mnist", "dynamic-binarized-mnist"}
_OPTION = re.compile(r"^(patches=\d+|crop=\d+|mosaic)(,(patches=\d+|crop=\d+|mosaic))*$")


@dataclass(frozen=True)
class DatasetView:
    """A dataset name with its item options (see the module docstring)."""

    name: str
    patches: int | None = None
    crop: int | None = None
    mosaic: bool = False

    @property
    def options(self) -> str:
        """The options as the ``items`` column records them ("" for plain items)."""
        parts = [
            f"patches={self.patches}" if self.patches else "",
            f"crop={self.crop}" if self.crop else "",
            "mosaic" if self.mosaic else "",
        ]
        return ",".join(p for p in parts if p)

    @classmethod
    def parse(cls, text: str) -> DatasetView:
        head, sep, tail = text.rpartition(":")
        if not sep or not _OPTION.match(tail):
            return cls(text)
        options: dict = {}
        for part in tail.split(","):
            key, _, value = part.partition("=")
            if key in options:
                raise DatasetError(f"dataset option '{key}' given twice in {text!r}")
            options[key] = True if key == "mosaic" else int(value)
            if key != "mosaic" and options[key] < 1:
                raise DatasetError(f"dataset option {part!r} must be at least 1")
        if "patches" in options and "crop" in options:
            raise DatasetError(f"{text!r}: use patches or crop, not both")
        return cls(head, **options)


def check_dataset(dataset: str, data_dir: Path | None = None) -> None:
    """Refuse an unknown dataset, bad options, a missing ``folder:PATH`` or a ``--data-dir``
    that is not a folder, reading no file: what a typo needs, in a fraction of a second."""
    view = DatasetView.parse(dataset)
    if view.name.startswith(FOLDER_PREFIX):
        folder = Path(view.name[len(FOLDER_PREFIX) :]).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"image folder {folder} does not exist")
    else:
        get_spec(view.name)
    data_root_candidates(data_dir)


def spread(n: int, limit: int | None) -> np.ndarray:
    """Indices of ``limit`` rows spread evenly over ``n`` (all of them when limit is None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def load_items(
    dataset: str,
    *,
    split: str | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[NamedImage]:
    """The items of ``dataset`` (module docstring), with its options applied."""
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be at least 1, got {limit}")
    view = DatasetView.parse(dataset)
    if is_image_dataset(view.name):
        if split not in (None, "all"):
            raise DatasetError(f"{view.name!r} has no splits (got --split {split})")
        items = load_images(view.name, data_dir=data_dir, limit=limit)
    else:
        split = split or "test"
        rows = load_array(view.name, split, data_dir=data_dir, seed=seed)
        binary = view.name in BINARY_DATASETS
        items = [
            NamedImage(f"{split}/{i:05d}", rows[i], binary=binary) for i in spread(len(rows), limit)
        ]
    if view.crop:
        items = [centre_crop(item, view.crop) for item in items]
    if view.patches:
        items = [patch for item in items for patch in patches(item, view.patches)]
        if not items:
            raise DatasetError(f"no {view.patches}x{view.patches} patch fits in {dataset!r}")
    if view.mosaic:
        items = [mosaic(items)]
    return items


def centre_crop(item: NamedImage, size: int) -> NamedImage:
    h, w = item.pixels.shape[:2]
    if size > min(h, w):
        raise DatasetError(f"crop={size} is larger than {item.name} ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return NamedImage(item.name, item.pixels[top : top + size, left : left + size], item.binary)


def patches(item: NamedImage, size: int) -> list[NamedImage]:
    h, w = item.pixels.shape[:2]
    return [
        NamedImage(f"{item.name}@{y},{x}", item.pixels[y : y + size, x : x + size], item.binary)
        for y in range(0, h - size + 1, size)
        for x in range(0, w - size + 1, size)
    ]


def mosaic(items: list[NamedImage]) -> NamedImage:
    """All items, of one shape, tiled row-major into one image with no padding: the number
    of columns is the largest divisor of the count not above its square root."""
    shapes = {item.pixels.shape for item in items}
    if len(shapes) != 1:
        raise DatasetError(f"mosaic needs items of one shape, got {sorted(shapes)}")
    n = len(items)
    cols = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    stack = np.stack([item.pixels for item in items])  # (n, h, w[, c])
    h, w = stack.shape[1:3]
    grid = stack.reshape(n // cols, cols, *stack.shape[1:]).swapaxes(1, 2)
    pixels = grid.reshape(n // cols * h, cols * w, *stack.shape[3:])
    return NamedImage(f"mosaic({n})", pixels, binary=all(item.binary for item in items))
