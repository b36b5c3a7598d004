"""The Variational Lossy Autoencoder and its ablation arms (Chen et al. 2017, arXiv:1611.02731).

What is checked, and why each check can fail:

* the decoder's window is *measured* (gradients) and equals the configured one, and no output
  pixel depends on its own or a later input pixel;
* the AF prior's log-determinant is in the rate (checked against an independent numeric
  Jacobian on a tiny code, with a flow whose log-determinant is far from zero);
* free bits floor the batch-mean total KL at 0.01 * 784 = 7.84 nats in the loss only;
* sampling and the training-time likelihood give the same log-probabilities;
* the IWAE estimate is above the ELBO and does not depend on how k is chunked;
* the unconditional PixelCNN is an exact, normalised likelihood with a rate of exactly zero;
* every arm trains on real data (binarized MNIST, 8-bit MNIST, Kodak patches) with a falling
  loss, and models survive a checkpoint round trip.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.autograd.functional import jacobian

import benchmarks
from benchmarks.datasets import dataset_names, load_array, load_images
from vlae_models.core import LatentModel, ModelError, ModelOutput, as_nchw, build
from vlae_models.evaluate import decoder_draws, evaluate
from vlae_models.layers.masked import (
    dependency_mask,
    measure_receptive_field,
    receptive_field,
)
from vlae_models.pixelcnn import PixelCNN
from vlae_models.train import TrainConfig, objective
from vlae_models.vlae import VLAE

# Small configs: 8 x 8 images keep every-pixel checks and autoregressive sampling quick.
TINY = dict(image_size=8, z_dim=4, encoder_width=8, cond_width=8, flow_hidden=16)
LARGE_WINDOW = dict(pixelcnn_layers=12, pixelcnn_kernel=7, free_bits_per_pixel=0.0)


def make(name: str, seed: int = 0, **overrides) -> LatentModel:
    torch.manual_seed(seed)
    return build(name, **overrides)


def randomise(module: nn.Module, std: float, seed: int = 0) -> None:
    """Random weights (new flow steps are the identity, which would hide a missing log-det)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def binary_batch(n: int, size: int, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, size, size, generator=gen) < 0.3).float()


# --- the decoder's window ------------------------------------------------------------------


@pytest.mark.parametrize("pixel", [(27, 14), (10, 2)])
def test_measured_window_is_the_configured_one(pixel: tuple[int, int]) -> None:
    model = make("vlae")  # the paper's MNIST decoder: 6 masked 3 x 3 layers
    net = model.decoder.net
    measured = measure_receptive_field(net, 28, 28, pixel=pixel)
    expected = receptive_field(6, 3).clipped(28, 28, *pixel)
    assert measured == expected
    if pixel == (27, 14):  # room on every side: 6 rows of 13 above + 6 to the left
        assert len(measured) == 6 * 13 + 6 == 84
        assert (measured.rows_above, measured.cols_left, measured.cols_right) == (6, 6, 6)


def test_large_window_sees_the_whole_past() -> None:
    model = make("vlae", **LARGE_WINDOW)
    measured = measure_receptive_field(model.decoder.net, 28, 28, pixel=(27, 14), n_trials=1)
    past = {(r - 27, c - 14) for r in range(28) for c in range(28) if r * 28 + c < 27 * 28 + 14}
    assert measured.offsets == past  # 770 pixels: every earlier pixel, nothing else


@pytest.mark.parametrize(
    "overrides",
    [dict(TINY), dict(TINY, in_channels=3, likelihood="logistic-mixture")],
    ids=["binary", "rgb-mixture"],
)
def test_no_output_depends_on_its_own_or_a_later_pixel(overrides: dict) -> None:
    net = make("vlae", **overrides).decoder.net
    dep = dependency_mask(net, 8, 8, n_trials=1).any(dim=3)  # (C, H, W, H_src, W_src)
    order = torch.arange(64).view(8, 8)
    later_or_same = order.view(8, 8, 1, 1) <= order.view(1, 1, 8, 8)  # [r, w, r2, w2]
    assert not (dep & later_or_same).any()
    # ... and it does read the past: every pixel but the first depends on its left neighbour.
    for r, w in itertools.product(range(8), range(1, 8)):
        assert dep[:, r, w, r, w - 1].all()


def test_decoder_centres_its_inputs() -> None:
    net = make("vlae", **TINY, in_channels=3, likelihood="logistic-mixture").decoder.net.double()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    cond = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    centred = net(x, cond)
    net.centre_inputs = False
    assert torch.allclose(centred, net(2 * x - 1, cond), rtol=0, atol=1e-12)


def test_fast_elu_equals_elu_in_value_and_gradient() -> None:
    from vlae_models.layers.masked import fast_elu

    t = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    t = t[t != 0].requires_grad_()  # at exactly 0 ELU's one-sided slopes differ anyway
    ours, theirs = fast_elu(t), torch.nn.functional.elu(t)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours.sum(), t)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), t)
    assert torch.allclose(g_ours, g_theirs, rtol=0, atol=1e-12)


# --- the rate ------------------------------------------------------------------------------


@pytest.mark.parametrize("mean_only", [False, True], ids=["affine-flow", "mean-only-flow"])
def test_rate_includes_the_flow_log_det(mean_only: bool) -> None:
    model = make("vlae", **dict(TINY, z_dim=3, flow_hidden=8, flow_mean_only=mean_only))
    randomise(model.prior, std=0.6)
    x = binary_batch(4, 8)
    z = torch.randn(4, 3) * 1.5
    out = model(x, z=z)

    # Independent reference: log q from torch.distributions, log p by change of variables
    # with the Jacobian of the flow z -> eps taken numerically, point by point.
    mean, std = model.encode(x)
    log_q = torch.distributions.Normal(mean, std).log_prob(z).sum(1)
    log_dets, log_p = [], []
    for zi in z.double():
        prior = model.prior.double()
        eps = prior(zi[None])[0][0]
        jac = jacobian(lambda v, prior=prior: prior(v[None])[0][0], zi)
        log_det = torch.linalg.slogdet(jac).logabsdet
        log_dets.append(float(log_det))
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum() + log_det
        log_p.append(float(log_pz.detach()))
    model.prior.float()
    expected = log_q.detach().double() - torch.tensor(log_p, dtype=torch.float64)
    assert torch.allclose(out.rate.detach().double(), expected, atol=2e-4)
    assert torch.equal(out.rate, out.extras["log_qz"] - out.extras["log_pz"])
    if mean_only:
        assert max(abs(d) for d in log_dets) < 1e-9
    else:  # large enough that dropping the log-det would fail the comparison above
        assert min(abs(d) for d in log_dets) > 0.1


# --- free bits -----------------------------------------------------------------------------


def test_free_bits_floor_the_batch_mean_total_kl_in_the_loss_only() -> None:
    from vlae_models.train import free_bits_floor

    model = make("vlae")
    assert math.isclose(model.free_bits_nats, 0.01 * 784)
    config = TrainConfig(steps=1)  # free_bits=None: the model's own floor
    floor = free_bits_floor(config, model)
    assert floor == model.free_bits_nats
    assert free_bits_floor(TrainConfig(steps=1, free_bits=0.0), model) == 0.0
    assert free_bits_floor(config, make("pixelcnn")) == 0.0
    distortion = torch.tensor([100.0, 200.0])

    # Mean KL 10 > 7.84: the floor is inactive. (Flooring each example would give 163.92.)
    rate = torch.tensor([0.0, 20.0], requires_grad=True)
    out = ModelOutput(distortion=distortion, rate=rate)
    assert objective(out, config, 10**6, floor)[0].item() == pytest.approx(150.0 + 10.0)
    # Mean KL 2 < 7.84: the loss uses 7.84 and the KL gets no gradient.
    rate = torch.tensor([1.0, 3.0], requires_grad=True)
    out = ModelOutput(distortion=distortion, rate=rate)
    loss, _ = objective(out, TrainConfig(steps=1, beta=0.5), 10**6, floor)
    assert loss.item() == pytest.approx(150.0 + 0.5 * 7.84)
    loss.backward()
    assert torch.equal(rate.grad, torch.zeros(2))
    no_floor = free_bits_floor(config, make("vlae", free_bits_per_pixel=0.0))
    assert objective(out, config, 10**6, no_floor)[0].item() == pytest.approx(152.0)

    # The reported rate is the true KL estimate, whatever the floor.
    x = binary_batch(3, 28)
    out = model(x)
    assert torch.equal(out.rate, out.extras["kl_before_free_bits"])
    assert torch.equal(out.rate, out.extras["log_qz"] - out.extras["log_pz"])


# --- sampling and likelihood ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [dict(TINY), dict(TINY, in_channels=3, likelihood="logistic-mixture")],
    ids=["binary", "rgb-mixture"],
)
def test_sampling_agrees_with_the_training_likelihood(overrides: dict) -> None:
    model = make("vlae", **overrides).eval()
    randomise(model.prior, std=0.2)
    torch.manual_seed(1)
    z = model.sample_prior(6)
    x, log_prob = model.decode(z)
    assert torch.allclose(log_prob, -model(x, z=z).distortion, rtol=1e-5, atol=1e-3)
    levels = 1 if model.likelihood.binary else 255
    assert torch.equal(x * levels, (x * levels).round()) and x.min() >= 0 and x.max() <= 1


def test_pixelcnn_sampling_agrees_with_its_likelihood() -> None:
    model = make("pixelcnn", image_size=8).eval()
    torch.manual_seed(1)
    x, log_prob = model.sample_with_log_prob(6)
    assert torch.allclose(log_prob, -model(x).distortion, rtol=1e-5, atol=1e-3)


def test_iwae_is_above_the_elbo_and_independent_of_chunking() -> None:
    model = make("vlae", **TINY).eval()
    x = binary_batch(16, 8, seed=3)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = torch.stack([-(o.distortion + o.rate) for o in (model(x) for _ in range(32))])
        elbo = elbo.mean()
        one_chunk = model.log_likelihood(x, 128, max_rows=16 * 128)
        small_chunks = model.log_likelihood(x, 128, max_rows=16 * 8)  # 16 chunks of 8
    assert one_chunk.shape == small_chunks.shape == (16,)
    assert one_chunk.mean() > elbo and small_chunks.mean() > elbo
    assert abs(one_chunk.mean() - small_chunks.mean()) < 0.3


def test_pixelcnn_is_exact_normalised_and_has_zero_rate() -> None:
    model = make("pixelcnn", image_size=4).eval()
    assert not model.has_latents and model.rate_kind == "kl"  # a KL that is exactly 0
    # All 2^16 binary 4 x 4 images: the probabilities sum to one (exact and causal).
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=16))).view(-1, 1, 4, 4)
    with torch.no_grad():
        out = model(bits)
        assert torch.logsumexp(-out.distortion.double(), 0).abs() < 1e-4
        assert torch.equal(out.rate, torch.zeros(len(bits)))
        x = bits[::4097]
        assert torch.equal(model.log_likelihood(x, 7), -model(x).distortion)
    loss, _ = objective(out, TrainConfig(steps=1), step=0, free_bits=0.0)
    assert loss.item() == pytest.approx(out.distortion.mean().item())


def test_pixelcnn_evaluation_reports_the_exact_nll_without_an_iwae_pass(tmp_path) -> None:
    model = make("pixelcnn", image_size=8).eval()
    pixels = binary_batch(6, 8).to(torch.uint8)
    (row,) = evaluate(model, pixels, iw_samples=50, mutual_info=False, out_dir=tmp_path)
    # no z, so no "what z keeps" grid (a VLAE writes one: tests/test_comparison.py)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recon.png", "samples.png"]
    with torch.no_grad():
        exact = -model.log_likelihood(model.prepare(pixels), 1).double().mean().item()
    assert row["estimator"] == "exact" and "iw_samples" not in row
    assert row["nll_nats"] == pytest.approx(exact, rel=1e-6)
    assert row["rate_nats"] == 0.0


def test_reconstruct_and_sample_give_images() -> None:
    model = make("vlae", **TINY).eval()
    x = binary_batch(3, 8)
    for images in (model.reconstruct(x), model.sample(3), model.sample(3, mode="sample")):
        assert images.shape == (3, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    with pytest.raises(ModelError, match="mode"):
        model.sample(2, mode="median")


def test_decoder_draws_share_one_z_per_row() -> None:
    """Each row of the "what z keeps" grid: the input, then draws from p(x | z = E_q[z])."""
    model = make("vlae", **TINY).eval()
    x = binary_batch(2, 8)
    torch.manual_seed(5)
    rows = decoder_draws(model, x, draws=3).view(2, 4, 1, 8, 8)
    assert torch.equal(rows[:, 0], x)
    torch.manual_seed(5)
    mean, _ = model.encode(x)
    expected, _ = model.decode(mean.repeat_interleave(3, dim=0))
    assert torch.equal(rows[:, 1:].flatten(0, 1), expected)
    assert not torch.equal(rows[:, 1], rows[:, 2])  # the decoder's own randomness shows


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ModelError, match="prior"):
        build("vlae", prior="iaf")
    with pytest.raises(ModelError, match="divisible by 4"):
        build("vlae", image_size=30)
    with pytest.raises(ModelError, match="unknown config key"):
        build("vlae", free_bits=1.0)


# --- training on real data -----------------------------------------------------------------


def falling_loss(model: LatentModel, pixels: Tensor, steps: int) -> tuple[float, float]:
    """Mean loss of the first and the last two of ``steps`` Adamax steps on one fixed batch."""
    x = model.prepare(as_nchw(pixels))
    optimizer = torch.optim.Adamax(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        out = model(x)
        assert torch.isfinite(out.distortion).all() and torch.isfinite(out.rate).all()
        loss, _ = objective(out, TrainConfig(steps=1), step=0, free_bits=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses[:2])), float(np.mean(losses[-2:]))


ARMS = {
    "vlae-af": ("vlae", {}),
    "vlae-gaussian": ("vlae", {"prior": "gaussian"}),
    "vlae-large-window": ("vlae", LARGE_WINDOW),
    "vlae-factorised-decoder": ("vlae", {"pixelcnn_kernel": 1}),
    "pixelcnn": ("pixelcnn", {}),
    "beta-vae": ("beta-vae", {"latent_dim": 64, "likelihood": "bernoulli"}),
}


@pytest.mark.parametrize("arm", list(ARMS))
def test_each_arm_trains_on_binarized_mnist(arm: str, binarized_mnist_dir) -> None:
    name, overrides = ARMS[arm]
    images = load_array("binarized-mnist", "train", data_dir=binarized_mnist_dir.parent)[:32]
    first, last = falling_loss(make(name, **overrides), torch.from_numpy(images), steps=8)
    assert last < 0.95 * first, (first, last)


def test_8bit_mnist_with_logistic_mixture(mnist_dir) -> None:
    images = load_array("mnist", "train", data_dir=mnist_dir.parent)[:16]
    assert images.max() > 1
    model = make("vlae", likelihood="logistic-mixture", n_mix=3)
    with pytest.raises(ModelError, match="binary"):
        make("vlae").prepare(as_nchw(torch.from_numpy(images)))
    first, last = falling_loss(model, torch.from_numpy(images), steps=6)
    assert last < 0.95 * first, (first, last)


def test_kodak_patches_with_logistic_mixture(kodak_dir) -> None:
    patches = [
        img.pixels[r : r + 32, c : c + 32]
        for img in load_images("kodak", data_dir=kodak_dir.parent, limit=2)
        for r, c in itertools.product((64, 192), (64, 192, 320))
    ]
    pixels = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous()  # (12, 3, 32, 32)
    model = make("vlae", in_channels=3, image_size=32, likelihood="logistic-mixture", n_mix=3)
    first, last = falling_loss(model, pixels, steps=6)
    assert last < 0.95 * first, (first, last)


# --- checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vlae", "pixelcnn"])
def test_checkpoint_round_trip(name: str, tmp_path) -> None:
    checkpoint = pytest.importorskip("vlae_models.checkpoint")
    model = make(name, image_size=8, **({"z_dim": 4} if name == "vlae" else {})).eval()
    if isinstance(model, VLAE):
        randomise(model.prior, std=0.1)
    path = checkpoint.save(tmp_path / "model.safetensors", model)
    loaded, meta = checkpoint.load(path, weights="raw")
    assert meta["model"] == name and loaded.config == model.config
    assert type(loaded) is (VLAE if name == "vlae" else PixelCNN)
    x = binary_batch(2, 8)
    kwargs = {"z": torch.randn(2, 4)} if name == "vlae" else {}
    with torch.no_grad():
        a, b = model(x, **kwargs), loaded(x, **kwargs)
    assert torch.equal(a.distortion, b.distortion) and torch.equal(a.rate, b.rate)


# --- the sweep spec ------------------------------------------------------------------------


def test_the_spec_runs_unchanged_against_the_current_api() -> None:
    """The ablation spec loads (every key checked against the configs) and expands to jobs
    whose resolved training configs validate, for every profile."""
    from benchmarks.runs.spec import expand, load_spec

    train = pytest.importorskip("vlae_models.train")
    path = Path(benchmarks.__file__).parent / "specs" / "vlae_mnist.toml"
    loaded = load_spec(path)
    spec = tomllib.loads(path.read_text())
    assert set(loaded.data.datasets) <= set(dataset_names())
    for profile in [None, *loaded.profiles]:
        for job in expand(loaded, profile):
            train.validate(train.TrainConfig(**job.train_config))
    names = [arm["name"] for arm in spec["arms"]]
    assert len(set(names)) == len(names) == 5
    for arm in spec["arms"]:
        for dataset, numbers in arm.get("paper", {}).items():
            assert dataset in spec["data"]["datasets"] and {"nll", "kl"} & set(numbers)
    by_name = {arm["name"]: arm for arm in spec["arms"]}
    assert by_name["vlae"]["seeds"] == [1, 2]
    assert by_name["vlae"]["paper"]["binarized-mnist"]["nll"] == 79.03
    # The floor each arm trains with: the VLAE's 0.01 nats/dim * 784 dims, none for the
    # unconditional PixelCNN and for the large-window arm that is meant to collapse.
    floors = {
        arm["name"]: train.free_bits_floor(
            train.TrainConfig(**{**spec["train"], **arm["train"]}),
            make(arm["model"], **arm["set"]),
        )
        for arm in spec["arms"]
    }
    assert floors["vlae"] == floors["vlae-gaussian"] == pytest.approx(0.01 * 784)
    assert floors["pixelcnn"] == floors["vlae-large-window"] == 0.0
