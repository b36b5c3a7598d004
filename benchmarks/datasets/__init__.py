"""The dataset layer. `load_items` gives any dataset (with options such as
`kodak:patches=64`) as named items, the one input type of the evaluation path. Below it: registered
datasets, their lookup order, checksums and downloads.

Image datasets ("kodak", "embedded", "folder:PATH") come back as `NamedImage` lists from
`load_images`; MNIST-style datasets ("mnist", "fashion-mnist", "binarized-mnist",
"dynamic-binarized-mnist") as uint8 (N, 28, 28) arrays from `load_array`, with splits
train / valid / trainval / test (see `benchmarks.datasets.mnist`). Files are looked up in
`--data-dir`, then $VLAE_BENCH_DATA, then the user cache, then downloaded (see `fetch`).
"""

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.fetch import data_root_candidates
from benchmarks.datasets.images import NamedImage, load_images, read_image
from benchmarks.datasets.items import DatasetView, check_dataset, load_items, spread
from benchmarks.datasets.mnist import SPLITS, load_array, load_labels
from benchmarks.datasets.registry import dataset_names, is_image_dataset

__all__ = [
    "SPLITS",
    "DatasetError",
    "DatasetView",
    "check_dataset",
    "NamedImage",
    "data_root_candidates",
    "dataset_names",
    "dataset_status",
    "is_image_dataset",
    "load_array",
    "load_images",
    "load_items",
    "load_labels",
    "read_image",
    "spread",
]


def __getattr__(name: str):
    if name == "dataset_status":  # pandas: loaded only by the commands that list datasets
        from benchmarks.datasets.status import dataset_status

        return dataset_status
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
