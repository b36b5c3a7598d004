"""The networks behind LPIPS and DISTS, built by their packages and loaded from checked
weights (:mod:`benchmarks.metrics.weights`); imported when a perceptual metric first runs."""

from __future__ import annotations

import re
import unittest.mock
import warnings
from functools import cache
from typing import Any

import lpips
import numpy as np
import torch
from DISTS_pytorch import DISTS_pt
from torchvision import models

from benchmarks.metrics.tensors import rgb_tensor
from benchmarks.metrics.weights import BACKBONES, DISTS_WEIGHTS, HEADS, load


def _backbone(name: str) -> dict[str, Any]:
    """torchvision's ``features`` stack as ``features.{i}.{weight,bias}`` tensors."""

    def download() -> dict[str, Any]:
        net = models.alexnet(weights="IMAGENET1K_V1") if name == "alex" else models.vgg16(
            weights="IMAGENET1K_V1")  # fmt: skip
        return {f"features.{k}": v for k, v in net.features.state_dict().items()}

    return load(BACKBONES[name], download)


def _package_file(module: Any, relative: str) -> Any:
    """A weights file shipped inside a package, read as tensors only (no pickled code)."""

    def read() -> dict[str, Any]:
        path = f"{module.__path__[0]}/{relative}"
        return torch.load(path, map_location="cpu", weights_only=True)

    return read


def _with_backbone(model: Any, pattern: str, features: dict[str, Any]) -> dict[str, Any]:
    """The backbone tensors under the model's own names (``net.slice2.3.weight`` is
    torchvision's ``features.3.weight``)."""
    mapped = {}
    for key in model.state_dict():
        match = re.fullmatch(pattern, key)
        if match:
            mapped[key] = features[f"features.{match.group(1)}.{match.group(2)}"]
    return mapped


def _load_exactly(model: Any, tensors: dict[str, Any], buffers: set[str]) -> None:
    """Load ``tensors``; every parameter must be among them (the constructed buffers --
    normalisation constants and pooling filters -- are the package's own)."""
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if k.split(".")[-1] not in buffers]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"weights do not fit: missing {missing[:3]}, "
                           f"unexpected {result.unexpected_keys[:3]}")  # fmt: skip
    model.eval()


class LPIPSNet:
    """LPIPS v0.1: unit-normalised backbone activations, squared differences weighted by the
    learned 1x1 heads, averaged over space and summed over layers (the package's forward,
    split so the original's activations are computed once)."""

    def __init__(self, backbone: str) -> None:
        with warnings.catch_warnings():  # torchvision's note on lpips' `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=backbone, pretrained=False, pnet_rand=True, verbose=False)
        tensors = _with_backbone(model, r"net\.slice\d+\.(\d+)\.(weight|bias)", _backbone(backbone))
        heads = load(HEADS[backbone], _package_file(lpips, f"weights/v0.1/{backbone}.pth"))
        for key, value in heads.items():  # the package registers each head twice
            tensors[key] = tensors[re.sub(r"^lin(\d)", r"lins.\1", key)] = value
        _load_exactly(model, tensors, buffers={"shift", "scale"})
        self.model = model

    def features(self, image: np.ndarray) -> list[Any]:
        with torch.no_grad():
            scaled = self.model.scaling_layer(rgb_tensor(image) * 2 - 1)
            return [lpips.normalize_tensor(a) for a in self.model.net(scaled)]

    def distance(self, original: list[Any], other: list[Any]) -> float:
        with torch.no_grad():
            layers = [
                lpips.spatial_average(lin((a - b) ** 2))
                for lin, a, b in zip(self.model.lins, original, other, strict=True)
            ]
            return float(sum(layers).squeeze())


class DISTSNet:
    """DISTS: structure and texture similarity of VGG16 activations after L2 pooling,
    weighted by the learned alpha and beta (the package's forward, split likewise)."""

    C1 = C2 = 1e-6  # the package's constants

    def __init__(self) -> None:
        untrained_vgg = models.vgg16
        # the package asks torchvision for pretrained VGG16 (a download); it gets the
        # architecture alone, and the weights are loaded below
        with unittest.mock.patch.object(
            DISTS_pt.models, "vgg16", lambda pretrained=True: untrained_vgg(weights=None)
        ):
            model = DISTS_pt.DISTS(load_weights=False)  # fmt: skip
        tensors = _with_backbone(model, r"stage\d+\.(\d+)\.(weight|bias)", _backbone("vgg"))
        tensors.update(load(DISTS_WEIGHTS, _package_file(DISTS_pt, "weights.pt")))
        _load_exactly(model, tensors, buffers={"mean", "std", "filter"})
        self.model = model

    def features(self, image: np.ndarray) -> list[Any]:
        with torch.no_grad():
            return self.model.forward_once(rgb_tensor(image))

    def distance(self, original: list[Any], other: list[Any]) -> float:
        m = self.model
        with torch.no_grad():
            total = m.alpha.sum() + m.beta.sum()
            alphas = torch.split(m.alpha / total, m.chns, dim=1)
            betas = torch.split(m.beta / total, m.chns, dim=1)
            similarity = 0.0
            for x, y, alpha, beta in zip(original, other, alphas, betas, strict=True):
                x_mean, y_mean = x.mean([2, 3], keepdim=True), y.mean([2, 3], keepdim=True)
                structure = (2 * x_mean * y_mean + self.C1) / (x_mean**2 + y_mean**2 + self.C1)
                x_var = ((x - x_mean) ** 2).mean([2, 3], keepdim=True)
                y_var = ((y - y_mean) ** 2).mean([2, 3], keepdim=True)
                covariance = (x * y).mean([2, 3], keepdim=True) - x_mean * y_mean
                texture = (2 * covariance + self.C2) / (x_var + y_var + self.C2)
                similarity = similarity + (alpha * structure).sum() + (beta * texture).sum()
            return float(1 - similarity)


@cache
def network(name: str) -> LPIPSNet | DISTSNet:
    """One network per process, built on first use."""
    return DISTSNet() if name == "dists" else LPIPSNet(name)
