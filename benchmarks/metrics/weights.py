"""The perceptual metrics' network weights: found in a weights folder, checked against their
SHA-256, loaded without pickle.

The folder is ``--weights-dir`` or ``$VLAE_BENCH_WEIGHTS`` (the files directly in it, or in
its ``perceptual/`` subfolder). Its files hold torchvision's ImageNet AlexNet and VGG16
feature stacks, the LPIPS v0.1 linear heads and DISTS' alpha and beta as weights-only
safetensors (docs/metrics.md says where they come from). With no folder, and downloads
allowed, the backbones come from torchvision's own download and the heads from the files
inside the ``lpips`` and ``DISTS-pytorch`` wheels (``torch.load(weights_only=True)``);
offline, the error names the files needed and where to put them.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchError

WEIGHTS_ENV = "VLAE_BENCH_WEIGHTS"
OFFLINE_ENV = "VLAE_BENCH_OFFLINE"  # the datasets' switch: one setting turns all downloads off

BACKBONES = {"alex": "alexnet_features.safetensors", "vgg": "vgg16_features.safetensors"}
HEADS = {"alex": "lpips_v0.1_alex_lin.safetensors", "vgg": "lpips_v0.1_vgg_lin.safetensors"}
DISTS_WEIGHTS = "dists_alpha_beta.safetensors"
SHA256 = {
    "alexnet_features.safetensors":
        "9f97fd313f4da83dbe6bbfbe6effca1241de9edfcd7c53386261ed9697286dd9",
    "vgg16_features.safetensors":
        "cabd922aeb0dd6d56f2bed33221aee74b7f1e760ddd105c0e0891606cbab6d0d",
    "lpips_v0.1_alex_lin.safetensors":
        "255d6454292d155a069f693a111769acec003d588617b250f24775369c816e04",
    "lpips_v0.1_vgg_lin.safetensors":
        "4fbb0122b8b7c419838e12f9d9414a590916757773a1dc835cef7adef85e8933",
    "dists_alpha_beta.safetensors":
        "50980d68bc38b2fcc738b1a8c3ae77a87cb73883b230951c2c57190855bdb52f",
}  # fmt: skip


class WeightsError(BenchError):
    """Weights that are missing, corrupt or cannot be downloaded: one line."""


def weights_folder() -> Path | None:
    given = os.environ.get(WEIGHTS_ENV, "").strip()
    if not given:
        return None
    folder = Path(given).expanduser()
    if not folder.is_dir():
        raise WeightsError(f"weights folder {folder} (${WEIGHTS_ENV}) does not exist")
    return folder / "perceptual" if (folder / "perceptual").is_dir() else folder


def downloads_allowed() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in {"1", "true", "yes"}


def find(filename: str) -> Path | None:
    folder = weights_folder()
    path = folder / filename if folder else None
    return path if path and path.is_file() else None


def check_available(metric: str, filenames: tuple[str, ...]) -> None:
    """Refuse, before any work, a metric whose weights are neither here nor downloadable."""
    missing = [name for name in filenames if find(name) is None]
    if missing and not downloads_allowed():
        where = weights_folder() or f"a folder named by --weights-dir or ${WEIGHTS_ENV}"
        raise WeightsError(
            f"metric '{metric}' needs {', '.join(missing)} in {where} (downloads are off: "
            f"{OFFLINE_ENV}=1); see docs/metrics.md, 'Perceptual metrics'"
        )


def load(filename: str, fallback: Any) -> dict[str, Any]:
    """The tensors of ``filename`` from the weights folder, checked against its SHA-256;
    without the file, ``fallback()`` (a download), or a one-line error offline."""
    path = find(filename)
    if path is not None:
        return _verified(path)
    if not downloads_allowed():
        where = weights_folder() or f"a folder named by --weights-dir or ${WEIGHTS_ENV}"
        raise WeightsError(f"{filename} is not in {where} and downloads are off "
                           f"({OFFLINE_ENV}=1); see docs/metrics.md")  # fmt: skip
    try:
        return fallback()
    except Exception as err:
        raise WeightsError(
            f"{filename} is not in a weights folder and its download failed ({type(err).__name__}"
            f"); put the file in --weights-dir or ${WEIGHTS_ENV} (docs/metrics.md)"
        ) from None


@cache
def _verified(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256[path.name]:
        raise WeightsError(f"{path} has SHA-256 {digest[:12]}…, expected {SHA256[path.name][:12]}…"
                           " (corrupt or another file): replace it")  # fmt: skip
    return load_file(path)
