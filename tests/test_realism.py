"""FID and KID on 256-px patches: the pipeline (patching, feature statistics, the Fréchet
distance, the kernel MMD) checked against scipy and numpy with a network the test builds;
the real Inception weights are the user's file, refused in one line when absent."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import assert_one_line_error, run_cli
from torch import nn

from benchmarks import load_items
from benchmarks.evaluation.realism import realism
from benchmarks.metrics.realism import patches, realism_scores


class TinyFeatures(nn.Module):
    """uint8 images -> 12 features: a fixed random convolution, pooled."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 12, 9, stride=8)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.tanh(self.conv(images.float() / 255)).mean((2, 3)).double()


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def kernel_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with KID's kernel (x.y / d + 1)^3."""
    kernel = lambda x, y: (x @ y.T / x.shape[1] + 1) ** 3  # noqa: E731
    n = len(a)
    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    off = lambda k: (k.sum() - np.trace(k)) / (n * (n - 1))  # noqa: E731
    return float(off(kaa) + off(kbb) - 2 * kab.mean())


def test_patches_follow_the_two_grids():
    image = np.arange(600 * 520, dtype=np.uint32).reshape(600, 520).astype(np.uint8)
    found = patches(image)
    # grid at 0: 2 x 2; grid shifted by 128: rows 128, 384 (600-256=344 >= 128 only) -> 1 x 1
    assert len(found) == 4 + 1 and all(p.shape == (256, 256, 3) for p in found)
    assert np.array_equal(found[-1][:, :, 0], image[128:384, 128:384])


def test_fid_and_kid_equal_scipy_and_numpy_on_the_same_features(kodak_dir):
    items = load_items("kodak", data_dir=kodak_dir.parent, limit=3)
    originals = [item.pixels for item in items]
    rng = np.random.default_rng(0)
    noisy = [np.clip(o + rng.normal(0, 20, o.shape), 0, 255).astype(np.uint8) for o in originals]
    net = TinyFeatures()
    scores = realism_scores(originals, noisy, net, kid_subset=10_000)
    stack = lambda images: torch.from_numpy(np.stack(  # noqa: E731
        [p for i in images for p in patches(i)])).permute(0, 3, 1, 2)  # fmt: skip
    real, fake = net(stack(originals)).numpy(), net(stack(noisy)).numpy()
    assert scores["patches"] == len(real) == 3 * 8
    assert scores["fid"] == pytest.approx(frechet(real, fake), rel=1e-4)
    assert scores["kid"] == pytest.approx(kernel_mmd(real, fake), rel=1e-4)
    same = realism_scores(originals, originals, net)
    assert abs(same["fid"]) < 1e-6 * scores["fid"] and same["fid"] < scores["fid"]


def test_realism_codes_each_setting_and_ranks_qualities(kodak_dir):
    items = load_items("kodak", data_dir=kodak_dir.parent, limit=2)
    table = realism(items, ["jpeg=5,90"], TinyFeatures(), kid_subset=8)
    assert list(table["value"]) == [5, 90] and (table["patches"] == 16).all()
    assert table["fid"].iloc[0] > table["fid"].iloc[1] and table["bpp"].is_monotonic_increasing


def test_fid_without_inception_weights_is_one_line(monkeypatch, capsys, tmp_path):
    out = tmp_path / "o"
    code, _, err = run_cli(monkeypatch, capsys, "realism", "-c", "jpeg=50", "--out", str(out))
    assert_one_line_error(code, err, "FID and KID need the FID Inception weights",
                          "--inception-weights")  # fmt: skip
    pickled = tmp_path / "inception.pth"
    torch.save({"net": nn.Linear(2, 2)}, pickled)  # a pickled module, not a state dict
    code, _, err = run_cli(monkeypatch, capsys, "realism", "-c", "jpeg=50", "--out", str(out),
                           "--inception-weights", str(pickled))  # fmt: skip
    assert_one_line_error(code, err, "is not a weights-only state dict")
    assert not out.exists()
