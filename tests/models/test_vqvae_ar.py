"""The VQ-VAE's PixelCNN prior: its code length, its real code, its samples and its frozen
VQ-VAE, on real digits with the zoo's VQ-VAE (trained numbers: results/vq-ar-prior)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.datasets import load_items
from vlae_models import checkpoint
from vlae_models.config import TrainConfig
from vlae_models.core import ModelError, build
from vlae_models.train import train
from vlae_models.vqvae_ar import index_probs
from vlae_models.zoo import resolve

SMALL = {"prior_filters": 16, "prior_layers": 3, "prior_res_blocks": 1}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("vq-vae-ar", **SMALL).eval()


@pytest.fixture(scope="module")
def digits(binarized_mnist_dir) -> torch.Tensor:
    items = load_items("binarized-mnist", split="test", limit=5,
                       data_dir=binarized_mnist_dir.parent)  # fmt: skip
    return torch.from_numpy(np.stack([it.pixels for it in items]))[:, None].float()


def test_rate_is_the_prior_code_length_and_its_gradient_reaches_the_prior(model, digits):
    out = model(digits)
    idx = model.vqvae.code_indices(digits)
    # -log p(k) by the chain rule, one position at a time from the network's logits
    logits = model.index_logits(idx).detach()
    by_hand = -torch.log_softmax(logits, 1).gather(1, idx[:, None])[:, 0].flatten(1).sum(1)
    torch.testing.assert_close(out.rate.detach(), by_hand)
    torch.testing.assert_close(out.extras["rate_fixed"], torch.full((5,), 49 * math.log(128)))
    with torch.no_grad():
        vq = model.vqvae(digits)
    torch.testing.assert_close(out.distortion, vq.distortion)  # the VQ-VAE's, unchanged
    out.rate.sum().backward()
    assert all(p.grad is not None for p in model.prior.parameters())
    model.zero_grad()


def test_training_leaves_the_vq_vae_as_it_was(digits, tmp_path):
    """Two steps of the one loop (AdamW with weight decay, EMA): the VQ-VAE's weights and
    codebook buffers in the checkpoint, raw and EMA, are the zoo file's; the prior moved."""
    pixels = digits.to(torch.uint8).repeat(4, 1, 1, 1)
    config = TrainConfig(steps=2, batch_size=8, optimizer="adamw", weight_decay=0.1,
                         progress=False, device="cpu")  # fmt: skip
    path = train("vq-vae-ar", pixels, config=config, out_dir=tmp_path, model_config=SMALL)
    frozen, _ = checkpoint.load(resolve("zoo:vq-vae-binarized-mnist"))
    for weights in ("raw", "ema"):
        trained, _ = checkpoint.load(path, weights=weights)
        for key, value in frozen.state_dict().items():
            assert torch.equal(trained.vqvae.state_dict()[key], value), (weights, key)
    fresh = build("vq-vae-ar", **SMALL).prior.state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in trained.prior.state_dict().items())


def test_the_code_round_trips_and_costs_what_the_prior_says(model, digits):
    coded = model.compress(digits)
    bits = 8 * len(coded["strings"][0])
    ideal = float(model(digits).rate.detach().sum()) / math.log(2)
    assert ideal <= bits <= ideal + 64  # ANS: within its final words of the ideal length
    decoded = model.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert torch.equal(decoded, model.reconstruct(digits))
    with pytest.raises(ModelError, match="does not fit"):
        model.decompress([coded["strings"][0][:-1]], coded["shape"])
    with pytest.raises(ModelError, match="does not fit"):  # constriction would decode zeros
        model.decompress([b""], coded["shape"])
    one = model.compress(digits[:1])  # one digit: its logits come as a permuted view
    assert torch.equal(model.decompress(one["strings"], one["shape"])["x_hat"],
                       model.reconstruct(digits[:1]))  # fmt: skip


def test_table_probabilities_do_not_depend_on_the_batch():
    logits = torch.randn(50, 128) * 5
    whole = index_probs(logits)
    rows = np.concatenate([index_probs(logits[i : i + 1]) for i in range(50)])
    assert np.array_equal(whole, rows)
    transposed = index_probs(logits.t().contiguous().t())  # constriction reads C order
    assert transposed.flags["C_CONTIGUOUS"] and np.array_equal(transposed, whole)
    exact = torch.softmax(logits.double(), 1).numpy()
    assert np.abs(whole / whole.sum(1, keepdims=True) - exact).max() < 1e-3 * exact.max()


def test_samples_are_index_maps_drawn_from_the_prior(model):
    torch.manual_seed(0)
    assert model.sample(3).shape == (3, 1, 28, 28)
    idx = model.sample_indices(3)
    assert idx.shape == (3, 7, 7) and int(idx.min()) >= 0 and int(idx.max()) < 128


def test_a_vq_vae_of_another_shape_or_kind_is_refused(tmp_path):
    with pytest.raises(ModelError, match="image_size"):
        build("vq-vae-ar", image_size=32)
    with pytest.raises(ModelError, match="not a 'vq-vae'"):
        build("vq-vae-ar", vqvae="zoo:beta-vae-binarized-mnist")
    with pytest.raises(ModelError, match="no such file"):
        build("vq-vae-ar", vqvae=str(tmp_path / "missing.safetensors"))
