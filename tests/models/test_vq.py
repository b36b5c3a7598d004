"""VQ-VAE: the EMA codebook update against a hand computation, restarts, rates, code stats."""

from __future__ import annotations

import math

import torch

from vlae_models.core import build
from vlae_models.evaluate import evaluate
from vlae_models.layers.vector_quantizer import VectorQuantizerEMA

CODES = [[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]
# Four encoder outputs: two nearest code 0, two nearest code 1, none nearest code 2.
Z = [[0.1, 0.2], [0.9, 1.1], [1.2, 0.8], [-0.3, 0.1]]


def _quantizer(threshold: float) -> VectorQuantizerEMA:
    vq = VectorQuantizerEMA(
        3, 2, decay=0.9, eps=1e-5, commitment_cost=0.25, restart_threshold=threshold
    )
    vq.embedding.copy_(torch.tensor(CODES))
    vq.ema_sum.copy_(torch.tensor(CODES))
    vq.ema_count.fill_(1.0)
    vq.initialized.fill_(True)
    return vq.train()


def _z_e() -> torch.Tensor:
    return torch.tensor(Z).t().reshape(1, 2, 1, 4)  # (B=1, D=2, H=1, W=4)


def test_ema_update_matches_hand_computation():
    vq = _quantizer(threshold=0.0)
    z_q, idx, commit = vq(_z_e())
    assert idx.flatten().tolist() == [0, 1, 1, 0]

    # By hand: n = (2, 2, 0); s_0 = z0 + z3, s_1 = z1 + z2.
    gamma, eps = 0.9, 1e-5
    n = [2, 2, 0]
    s = [[0.1 - 0.3, 0.2 + 0.1], [0.9 + 1.2, 1.1 + 0.8], [0.0, 0.0]]
    count = [gamma * 1.0 + (1 - gamma) * n[k] for k in range(3)]
    ema_sum = [[gamma * CODES[k][d] + (1 - gamma) * s[k][d] for d in range(2)] for k in range(3)]
    total = sum(count)
    smoothed = [(count[k] + eps) / (total + 3 * eps) * total for k in range(3)]
    expected = [[ema_sum[k][d] / smoothed[k] for d in range(2)] for k in range(3)]

    torch.testing.assert_close(vq.ema_count, torch.tensor(count))
    torch.testing.assert_close(vq.ema_sum, torch.tensor(ema_sum))
    torch.testing.assert_close(vq.embedding, torch.tensor(expected))
    # The step's codes and commitment loss use the codebook before the update.
    old = [CODES[i] for i in (0, 1, 1, 0)]
    sq = sum((Z[j][d] - old[j][d]) ** 2 for j in range(4) for d in range(2))
    torch.testing.assert_close(commit, torch.tensor([0.25 * sq]))
    torch.testing.assert_close(z_q.detach().reshape(2, 4).t(), torch.tensor(old))


def test_straight_through_gradient_and_eval_mode_leaves_codebook_alone():
    vq = _quantizer(threshold=0.0).eval()
    z = _z_e().requires_grad_(True)
    z_q, _, _ = vq(z)
    z_q.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))
    torch.testing.assert_close(vq.embedding, torch.tensor(CODES))


def test_dead_code_is_restarted_on_an_encoder_output():
    torch.manual_seed(0)
    vq = _quantizer(threshold=1.0)
    vq(_z_e())
    # Code 2 got no assignment: its count fell to 0.9 < 1, so it now sits on a batch vector.
    assert int(vq.restarts) == 1
    assert any(torch.allclose(vq.embedding[2], torch.tensor(z)) for z in Z)
    assert float(vq.ema_count[2]) == 1.0


def test_codebook_is_initialised_from_the_first_batch():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(4, 2, restart_threshold=0.0).train()
    vq(_z_e())
    assert bool(vq.initialized)
    vq2 = VectorQuantizerEMA(4, 2, restart_threshold=0.0).train()
    torch.manual_seed(0)
    vq2.init_from(torch.tensor(Z))
    rows = {tuple(r) for r in torch.tensor(Z).tolist()}
    assert all(tuple(r) in rows for r in vq2.embedding.tolist())


def test_vqvae_rates_and_whole_set_code_statistics():
    torch.manual_seed(0)
    model = build("vq-vae", num_codes=16, width=16, embedding_dim=4)
    x = (torch.rand(8, 1, 28, 28) > 0.5).float()
    model.train()(x)  # one training forward: initialises the codebook from data
    model.eval()
    out = model(x)
    torch.testing.assert_close(out.extras["rate_fixed"], torch.full((8,), 49 * math.log(16)))
    # With a uniform prior (zero logits) the prior code length equals the fixed one.
    torch.testing.assert_close(out.extras["rate_prior"], out.extras["rate_fixed"])
    torch.testing.assert_close(out.rate, out.extras["rate_prior"])
    with torch.no_grad():
        model.prior_logits.copy_(torch.randn(16))
    pixels = (torch.rand(300, 1, 28, 28) > 0.5).to(torch.uint8)
    rows = {r["rate_kind"]: r for r in evaluate(model, pixels, mutual_info=False)}
    # Hand-made histogram over the whole set.
    with torch.no_grad():
        idx = model.code_indices(pixels.float())
        log_pi = torch.log_softmax(model.prior_logits, 0)
    counts = torch.bincount(idx.flatten(), minlength=16).double()
    p = counts / counts.sum()
    perplexity = math.exp(-float((p[p > 0] * p[p > 0].log()).sum()))
    assert abs(rows["prior"]["perplexity"] - perplexity) < 1e-6
    assert rows["fixed"]["codebook_usage"] == float((counts > 0).double().mean())
    assert abs(rows["prior"]["rate_nats"] - float(-log_pi[idx].flatten(1).sum(1).mean())) < 1e-3
    assert abs(rows["fixed"]["rate_nats"] - 49 * math.log(16)) < 1e-3
    for r in rows.values():
        assert r["nll_nats"] == r["rate_nats"] + r["distortion_nats"]
        assert "kl_nats" not in r and "iw_samples" not in r
