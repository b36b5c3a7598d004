"""FID and KID of reconstructions against their originals on 256 x 256 patches (HiFiC's
"FID/256", Mentzer et al. 2020): a realism score of a set of images, not of one image, so a
run's reconstructions are scored together (:mod:`benchmarks.evaluation.realism`).

The statistics are torchmetrics' (``FrechetInceptionDistance``, ``KernelInceptionDistance``)
over the features of a network the caller gives: the FID Inception network built by
torch-fidelity from a weights file the user supplies (:func:`inception_from_file`). The suite
ships no Inception weights and cannot download them here, so without the file FID and KID are
refused in one line; the tests check the pipeline with a network they build themselves.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.kid import KernelInceptionDistance

from benchmarks.errors import BenchError

PATCH = 256
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception


class RealismError(BenchError):
    """FID/KID cannot be computed (no weights file, images too small): one line."""


def patches(image: np.ndarray, size: int = PATCH) -> list[np.ndarray]:
    """Non-overlapping ``size`` x ``size`` patches on a grid from the top-left corner, then
    on the grid shifted by half a patch (HiFiC's protocol); gray becomes three channels."""
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    height, width = rgb.shape[:2]
    found = []
    for offset in (0, size // 2):
        for top in range(offset, height - size + 1, size):
            for left in range(offset, width - size + 1, size):
                found.append(rgb[top : top + size, left : left + size])
    return found


def inception_from_file(path: Path | None) -> nn.Module:
    """torch-fidelity's FID Inception v3 (2048 pool features) with the weights in ``path``,
    which must load as plain tensors (``weights_only=True``: no pickled code) first."""
    if path is None:
        raise RealismError(
            "FID and KID need the FID Inception weights: give --inception-weights FILE "
            f"(torch-fidelity's {INCEPTION_FILE}); the suite ships none and downloads none"
        )
    if not Path(path).is_file():
        raise RealismError(f"Inception weights file {path} does not exist")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        kind = type(err).__name__
        raise RealismError(f"{path} is not a weights-only state dict ({kind})") from None
    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(path))  # fmt: skip


def realism_scores(
    originals: Sequence[np.ndarray],
    reconstructions: Sequence[np.ndarray],
    network: nn.Module,
    kid_subset: int = 50,
    batch: int = 16,
) -> dict[str, float]:
    """``{"fid", "kid", "kid_std", "patches"}`` of the reconstructions' patches against the
    originals' (uint8 N x 3 x 256 x 256 batches into ``network``)."""
    real = [p for image in originals for p in patches(image)]
    fake = [p for image in reconstructions for p in patches(image)]
    if len(real) < 2 or len(fake) != len(real):
        raise RealismError(f"FID/KID need at least 2 patches of {PATCH} px; got {len(real)}")
    subset = min(kid_subset, len(real))
    fid = FrechetInceptionDistance(feature=network, reset_real_features=False)
    with warnings.catch_warnings():  # its note that it keeps every feature: a few hundred here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=network, subset_size=subset, subsets=100)
    torch.manual_seed(0)  # KID's subsets are drawn at random
    for start in range(0, len(real), batch):
        for stack, is_real in ((real, True), (fake, False)):
            tensor = torch.from_numpy(np.stack(stack[start : start + batch])).permute(0, 3, 1, 2)
            fid.update(tensor, real=is_real)
            kid.update(tensor, real=is_real)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
            "patches": len(real)}  # fmt: skip
