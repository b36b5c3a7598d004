"""Every model trains a few steps on real MNIST with a falling loss, then evaluates honestly.

Data come from the ``binarized_mnist_dir`` / ``mnist_dir`` fixtures (skipped politely when
$VLAE_BENCH_DATA is absent, failed under VLAE_BENCH_REQUIRE_DATA=1), read directly from the
files so these tests do not depend on the dataset module.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from baselines.method import plan
from benchmarks.datasets import NamedImage
from benchmarks.evaluation.engine import evaluate_items
from vlae_models import checkpoint
from vlae_models.evaluate import evaluate
from vlae_models.train import TrainConfig, train

SMALL = {
    "beta-vae": {"latent_dim": 8, "width": 16},
    "vq-vae": {"num_codes": 32, "width": 16, "embedding_dim": 8},
    "hvae": {"levels": 2, "width": 16, "z_channels": 2},
}


def _binarized(folder: Path, split: str, n: int) -> torch.Tensor:
    x = scipy.io.loadmat(folder / f"binarized_mnist_{split}.mat")["X"][:n]
    return torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, 28, 28), dtype=np.uint8))


def _mnist(folder: Path, n: int) -> torch.Tensor:
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        raw = f.read(16 + n * 784)
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, 28, 28).copy())


def _losses(out_dir: Path) -> list[float]:
    lines = (out_dir / "train_log.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def _trains(name: str, data: torch.Tensor, out: Path, steps: int = 40, **model_config) -> Path:
    cfg = TrainConfig(
        steps=steps, batch_size=32, lr=3e-3, log_every=1, progress=False, device="cpu",
        checkpoint_every=steps,
    )  # fmt: skip
    path = train(name, data, config=cfg, out_dir=out, model_config={**SMALL[name], **model_config})
    losses = _losses(out)
    assert len(losses) == steps and all(math.isfinite(v) for v in losses)
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.9 * first, (name, first, last)
    return path


@pytest.mark.parametrize("name", sorted(SMALL))
def test_trains_on_binarized_mnist(name: str, binarized_mnist_dir: Path, tmp_path: Path):
    torch.manual_seed(0)
    path = _trains(name, _binarized(binarized_mnist_dir, "train", 2000), tmp_path)
    model, meta = checkpoint.load(path)
    assert meta["weights"] == "ema"
    test = _binarized(binarized_mnist_dir, "test", 200)
    rows = evaluate(
        model, test, iw_samples=8, dataset="binarized-mnist", split="test", beta=1.0,
        out_dir=tmp_path / "eval",
    )  # fmt: skip
    assert {p.name for p in (tmp_path / "eval").iterdir()} == {
        "recon_binarized-mnist_test.png", "samples_binarized-mnist_test.png"
    }  # fmt: skip
    for row in rows:
        assert row["method"] == name and row["image"] == "__all__" and row["value"] == 1.0
        assert 0 < row["bits_per_dim"] < 1.0  # binary data: at most 1 bit per pixel is plausible
        assert abs(row["bpp"] - row["rate_nats"] / (math.log(2) * 784)) < 1e-9
        assert json.loads(row["config"]) == {**json.loads(row["config"]), **SMALL[name]}
    if name == "vq-vae":
        assert [r["rate_kind"] for r in rows] == ["fixed", "prior"]
        assert 0 < rows[0]["codebook_usage"] <= 1 and rows[0]["perplexity"] >= 1
        return
    (row,) = rows
    assert row["estimator"] == "iwae" and row["iw_samples"] == 8
    assert row["nll_nats"] <= row["neg_elbo_nats"] + 1.0  # IWAE is the tighter bound
    assert 0 <= row["active_units"] <= row["latent_dims"]
    if name == "hvae":
        assert row["kl_nats_l0"] + row["kl_nats_l1"] == pytest.approx(row["kl_nats"], rel=1e-6)
        assert 0 <= row["mutual_info_nats_l0"] <= math.log(200) + 1e-6
    else:
        assert 0 <= row["mutual_info_nats"] <= math.log(200) + 1e-6
        assert row["marginal_kl_nats"] == pytest.approx(row["rate_nats"] - row["mutual_info_nats"])


@pytest.mark.parametrize(
    ("name", "likelihood"),
    [("beta-vae", "logistic-mixture"), ("vq-vae", "logistic"), ("hvae", "gaussian")],
)
def test_trains_on_8bit_mnist(name: str, likelihood: str, mnist_dir: Path, tmp_path: Path):
    torch.manual_seed(0)
    data = _mnist(mnist_dir, 2000)
    path = _trains(name, data, tmp_path, likelihood=likelihood, n_mix=3)
    model, _ = checkpoint.load(path)
    rows = evaluate(model, data[:100], mutual_info=False)
    # the same checkpoint as a method: one row per image, scored by benchmarks.metrics.image
    (setting,), _ = plan([f"model:{path}"], None)
    items = [NamedImage(f"test/{i}", data[i, 0].numpy()) for i in range(8)]
    scored = evaluate_items([setting], items, {"dataset": "mnist"})
    # a coded row (real bytes) beside the bound: kl, or VQ-VAE's fixed and prior code lengths
    kinds = ["coded", "fixed", "prior"] if name == "vq-vae" else ["coded", "kl"]
    assert sorted(r["rate_kind"] for r in scored) == sorted(kinds * 8)
    assert all(r["psnr"] > 5 and r["mse"] > 0 and np.isnan(r["ms_ssim"]) for r in scored)
    for row in rows:
        if likelihood == "gaussian":  # a density: no bits/dim claimed
            assert "bits_per_dim" not in row and "elbo_bits_per_dim" not in row
        else:
            assert 0 < row["bits_per_dim"] < 8.0
