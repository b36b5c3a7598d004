"""The hierarchical VLAE: its bound, its levels, its real codec and its bits-back code, on
real binarized digits with small random weights (trained numbers: results/hierarchical-vlae)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal

from benchmarks.datasets import load_items
from vlae_models import bits_back as bb
from vlae_models.core import build

SMALL = {"width": 16, "z_channels": 2, "flow_hidden": 64, "pixelcnn_filters": 8,
         "pixelcnn_res_blocks": 1}  # fmt: skip


@pytest.fixture(scope="module")
def digits(binarized_mnist_dir) -> torch.Tensor:
    items = load_items("binarized-mnist", split="test", limit=6,
                       data_dir=binarized_mnist_dir.parent)  # fmt: skip
    return torch.from_numpy(np.stack([it.pixels for it in items]))[:, None].float()


def small(**kw):
    torch.manual_seed(0)
    return build("hierarchical-vlae", **{**SMALL, **kw}).eval()


def test_one_level_importance_weight_is_the_negative_elbo_at_the_same_draw(digits):
    """With one level the forward's rate is log q - log p_AF at its draw, so k = 1 importance
    weight and -(distortion + rate) are the same number; with two, each level's KL is
    reported and they add up to the rate."""
    model = small(levels=1)
    with torch.no_grad():
        torch.manual_seed(3)
        out = model(digits)
        torch.manual_seed(3)
        log_w = model.log_importance_weights(digits, 1)[:, 0]
    torch.testing.assert_close(log_w, -(out.distortion + out.rate), rtol=0, atol=1e-3)
    two = small(levels=2)
    with torch.no_grad():
        out = two(digits)
    assert out.extras["kl_levels"].shape == (len(digits), 2)
    torch.testing.assert_close(out.extras["kl_levels"].sum(1), out.rate)
    assert two.free_bits_nats == pytest.approx(0.01 * 784)


def test_two_level_importance_weight_by_hand(digits):
    """log p(x | z) + log p_AF(z_0) + log p(z_1 | z_0) - log q(z_0 | x) - log q(z_1 | x, z_0)
    at the traced draw, each density from torch.distributions."""
    model = small(levels=2)
    with torch.no_grad():
        torch.manual_seed(4)
        log_w = model.log_importance_weights(digits, 1)[:, 0]
        torch.manual_seed(4)
        h, trace = model._trace(digits, "sample")
        (z0, _, q0), (z1, p1, q1) = trace

        def normal(z, pair):
            return Normal(*pair).log_prob(z).flatten(1).sum(1)

        by_hand = (Bernoulli(logits=model.decoder.params(digits, model.cond_net(h)))
                   .log_prob(digits).flatten(1).sum(1)
                   + model.prior.log_prob(z0.flatten(1)) + normal(z1, p1)
                   - normal(z0, q0) - normal(z1, q1))  # fmt: skip
    torch.testing.assert_close(log_w, by_hand, rtol=0, atol=1e-3)


@pytest.mark.parametrize("prior", ["af", "gaussian"])
def test_the_codec_decodes_the_encoders_latents_bit_for_bit(digits, prior):
    model = small(prior=prior)
    states = []
    top_down = model.top_down
    model.top_down = lambda *a, **k: states.append(top_down(*a, **k)) or states[-1]
    coded = model.compress(digits)
    first = model.decompress(coded["strings"], coded["shape"], seed=5)["x_hat"]
    again = model.decompress(coded["strings"], coded["shape"], seed=5)["x_hat"]
    assert torch.equal(states[0], states[1])  # the decoder's top-down state is the encoder's
    assert torch.equal(first, again) and set(first.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(Exception, match="does not fit"):
        model.decompress(coded["strings"][:-1], coded["shape"])


def test_redraw_keeping_every_level_is_the_reconstruction(digits):
    model = small()
    torch.manual_seed(1)
    kept = model.redraw(digits, keep=[0, 1], mode="sample")
    torch.manual_seed(1)
    assert torch.equal(kept, model.reconstruct(digits, mode="sample"))
    torch.manual_seed(1)
    assert not torch.equal(model.redraw(digits, keep=[0], mode="sample"), kept)


@pytest.mark.parametrize("prior", ["af", "gaussian"])
def test_bits_back_round_trips_and_costs_the_negative_elbo(digits, prior):
    """With either top-level prior (the Gaussian one is the HVAE's learned prior, shifted
    here so that coding it as N(0, I) would show)."""
    model = small(prior=prior)
    if prior == "gaussian":
        with torch.no_grad():
            model.levels[0].prior.net[-1].bias[:2].fill_(2.0)  # the top prior's means
    coder = bb.coder_for(model, 8)
    # The shifted prior sits far from every posterior: in a chain, a posterior pop reads the
    # low bits the previous image's improbable prior push left (inside that symbol's narrow
    # interval), which draws z from q's tail. One image a lane starts from seeded bits.
    lanes = 2 if prior == "af" else len(digits)
    message = bb.encode_lanes(coder, digits, lanes)
    assert torch.equal(bb.decode_lanes(coder, message.words, message.lengths), digits)
    net = (np.array(message.steps.data) + np.array(message.steps.prior)
           - np.array(message.steps.posterior)) * math.log(2)  # fmt: skip
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = np.mean([(lambda o: (o.distortion + o.rate).numpy())(model(digits))
                        for _ in range(8)], 0)  # fmt: skip
    assert abs(net.mean() - elbo.mean()) < 0.03 * elbo.mean()
