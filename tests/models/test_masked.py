"""Masked convolutions and LocalPixelCNN: causality, the exact receptive field, and sampling.

Every check runs in float64, where masked taps contribute exact zeros, so "does not depend"
is tested with exact equality rather than a tolerance.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import Tensor, nn

from vlae_models.layers.masked import (
    LocalPixelCNN,
    MaskedConv2d,
    ReceptiveField,
    VerticalConv2d,
    cond_receptive_field,
    dependency_mask,
    measure_receptive_field,
    raster_mask,
    receptive_field,
)
from vlae_models.layers.pixel_steps import sample_autoregressive

# The VLAE MNIST decoder (Chen et al. 2017) and a large-window decoder that sees everything.
PAPER_MNIST = dict(in_channels=1, cond_channels=4, n_layers=6, filters=12, kernel_size=3)
LARGE = dict(in_channels=1, cond_channels=4, n_layers=12, filters=8, kernel_size=7, n_res_blocks=0)

CONFIGS: dict[str, dict] = {
    "mnist_paper": PAPER_MNIST,
    "rgb_sequential": dict(
        in_channels=3, cond_channels=2, n_layers=2, filters=6, n_out_params=2, n_res_blocks=1
    ),
    "rgb_joint_5x5": dict(
        in_channels=3,
        cond_channels=2,
        n_layers=2,
        filters=5,
        kernel_size=5,
        n_out_params=2,
        n_res_blocks=1,
        channel_order="joint",
    ),
    "one_layer_rgb": dict(in_channels=3, cond_channels=2, n_layers=1, filters=3, n_res_blocks=1),
    "factorised_1x1": dict(in_channels=1, cond_channels=1, n_layers=2, filters=4, kernel_size=1),
}
SIZE = 8  # every-pixel checks run on SIZE x SIZE images


def make(name: str, seed: int = 0) -> LocalPixelCNN:
    torch.manual_seed(seed)
    return LocalPixelCNN(**CONFIGS[name]).double().eval()


@functools.cache
def measured(name: str, wrt: str) -> Tensor:
    return dependency_mask(make(name), SIZE, SIZE, wrt=wrt)


def raster_order(model: LocalPixelCNN, height: int, width: int) -> Tensor:
    """Position of every (channel, row, col) in the generation order, shape (C, H, W)."""
    channels = model.in_channels
    pixel = torch.arange(height * width).view(1, height, width)
    if model.channel_order == "joint":
        return pixel.expand(channels, height, width)
    return pixel * channels + torch.arange(channels).view(channels, 1, 1)


def expected_dependencies(model: LocalPixelCNN, height: int, width: int, wrt: str) -> Tensor:
    """The closed-form windows as a (C, H, W, C_src, H, W) boolean tensor."""
    c = model.in_channels
    c_src = c if wrt == "x" else model.cond_channels
    out = torch.zeros(c, height, width, c_src, height, width, dtype=torch.bool)
    if wrt == "x":
        window = receptive_field(model.n_layers, model.kernel_size)  # earlier pixels only
    else:
        window = model.cond_receptive_field
    for r in range(height):
        for w in range(width):
            out[:, r, w] = window.mask(height, width, r, w)
            if wrt == "x" and model.channel_order == "sequential":
                out[:, r, w, :, r, w] = torch.ones(c, c).tril(-1).bool()  # earlier colours
    return out


# --- masks ---------------------------------------------------------------------------------


def test_raster_masks_single_channel() -> None:
    a = raster_mask(3, "A", 1, 1)[0, 0]
    b = raster_mask(3, "B", 1, 1)[0, 0]
    assert torch.equal(a, torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    assert torch.equal(b, torch.tensor([[1.0, 1, 1], [1, 1, 0], [0, 0, 0]]))
    assert torch.equal(raster_mask((1, 5), "A", 1, 1)[0, 0], torch.tensor([[1.0, 1, 0, 0, 0]]))


def test_raster_masks_rgb_centre_tap() -> None:
    # Image -> 6 features (2 per colour): at the centre R sees nothing, G sees R, B sees R and G.
    a = raster_mask(3, "A", 3, 6, n_groups=3)[:, :, 1, 1]
    assert torch.equal(a, torch.tensor([[0.0, 0, 0]] * 2 + [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2))
    b = raster_mask(1, "B", 6, 3, n_groups=3)[:, :, 0, 0]
    assert torch.equal(b, torch.tensor([[1.0, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1.0] * 6]))
    # Off-centre taps connect every colour group.
    assert raster_mask(3, "A", 3, 6, n_groups=3)[:, :, 0, 2].eq(1).all()


def test_vertical_mask_rows() -> None:
    strict = VerticalConv2d(1, 1, 5, include_centre_row=False).mask[0, 0]
    with_row = VerticalConv2d(1, 1, 5, include_centre_row=True).mask[0, 0]
    assert strict.sum(1).tolist() == [5, 5, 0, 0, 0]
    assert with_row.sum(1).tolist() == [5, 5, 5, 0, 0]


def test_masked_weights_get_no_gradient() -> None:
    conv = MaskedConv2d(3, 6, 3, "A", n_groups=3)
    conv(torch.randn(2, 3, 5, 5)).square().sum().backward()
    assert conv.weight.grad is not None
    assert conv.weight.grad[conv.mask == 0].eq(0).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 4, 4, "A")
    with pytest.raises(ValueError, match="colour groups"):
        LocalPixelCNN(in_channels=3, filters=8)
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 4, 3, "C")  # type: ignore[arg-type]
    model = LocalPixelCNN(cond_channels=4)
    with pytest.raises(ValueError, match="cond"):
        model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="cond"):
        model(torch.zeros(1, 1, 8, 8), torch.zeros(1, 4, 7, 8))


def test_output_shape() -> None:
    model = LocalPixelCNN(in_channels=3, cond_channels=2, filters=6, n_out_params=5)
    out = model(torch.rand(2, 3, 9, 7), torch.randn(2, 2, 9, 7))
    assert out.shape == (2, 3, 5, 9, 7)


# --- causality and the receptive field, for every pixel of an 8 x 8 image --------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_no_dependence_on_current_or_later_inputs_jacobian(name: str) -> None:
    model = make(name)
    order = raster_order(model, SIZE, SIZE)
    later_or_same = order[None, None, None] >= order[:, :, :, None, None, None]
    dep = measured(name, "x")
    assert not (dep & later_or_same).any()


@pytest.mark.parametrize("name", CONFIGS)
def test_measured_window_equals_theory_at_every_pixel(name: str) -> None:
    model = make(name)
    for wrt in ("x", "cond"):
        expected = expected_dependencies(model, SIZE, SIZE, wrt)
        got = measured(name, wrt)
        bad = (got != expected).nonzero()[:5].tolist()
        assert torch.equal(got, expected), f"{wrt}: mismatches at {bad}"


@pytest.mark.parametrize("name", CONFIGS)
def test_no_dependence_on_current_or_later_inputs_perturbation(name: str) -> None:
    """Resample every input at or after position k: outputs at position k must not move."""
    model = make(name)
    gen = torch.Generator().manual_seed(1)
    c = model.in_channels
    x = torch.rand(1, c, SIZE, SIZE, generator=gen, dtype=torch.float64)
    cond = torch.randn(1, model.cond_channels, SIZE, SIZE, generator=gen, dtype=torch.float64)
    order = raster_order(model, SIZE, SIZE)
    positions = order.unique()
    noise = torch.rand(len(positions), c, SIZE, SIZE, generator=gen, dtype=torch.float64)
    late = order[None] >= positions.view(-1, 1, 1, 1)
    batch = torch.where(late, noise, x)
    with torch.no_grad():
        ref = model(x, cond)[0]
        out = model(batch, cond.expand(len(positions), -1, -1, -1))
    for i, k in enumerate(positions.tolist()):
        at_k = order == k  # (C, H, W)
        assert torch.equal(out[i].permute(1, 0, 2, 3)[:, at_k], ref.permute(1, 0, 2, 3)[:, at_k])
    # Sanity: resampling everything (position 0) moves the outputs, unless nothing has a past.
    has_past = len(model.receptive_field) > 0
    assert torch.equal(out[0], ref) != has_past


@pytest.mark.parametrize("name", ["mnist_paper", "rgb_sequential", "rgb_joint_5x5"])
def test_window_by_perturbation(name: str) -> None:
    """Resampling everything outside an output's window leaves it unchanged; inside moves it."""
    model = make(name)
    gen = torch.Generator().manual_seed(2)
    c, n = model.in_channels, model.cond_channels
    x = torch.rand(1, c, SIZE, SIZE, generator=gen, dtype=torch.float64)
    cond = torch.randn(1, n, SIZE, SIZE, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x, cond)[0]
    for wrt, source in (("x", x), ("cond", cond)):
        allowed = expected_dependencies(model, SIZE, SIZE, wrt).flatten(0, 2)  # (C*H*W, ...)
        noise = torch.rand(allowed.shape, generator=gen, dtype=torch.float64) + 2.0
        outside = torch.where(allowed, source, noise)
        inside = torch.where(allowed, noise, source)
        with torch.no_grad():
            outs = []
            for batch in (outside, inside):
                xs = batch if wrt == "x" else x.expand(len(batch), -1, -1, -1)
                cs = batch if wrt == "cond" else cond.expand(len(batch), -1, -1, -1)
                out = model(xs, cs)  # (C*H*W, C, P, H, W): image j is for output element j
                outs.append(out.permute(1, 3, 4, 0, 2).flatten(0, 2).diagonal().T)
        assert torch.equal(outs[0], ref.permute(0, 2, 3, 1).flatten(0, 2))
        has_window = allowed.flatten(1).any(1)
        moved = (outs[1] != ref.permute(0, 2, 3, 1).flatten(0, 2)).any(1)
        assert torch.equal(moved, has_window), wrt


def test_paper_mnist_window_spot_checks_28x28() -> None:
    torch.manual_seed(0)
    model = LocalPixelCNN(**PAPER_MNIST)
    rf = model.receptive_field
    assert (len(rf), rf.rows_above, rf.cols_left, rf.cols_right) == (84, 6, 6, 6)
    assert len(model.cond_receptive_field) == 6 * 11
    for pixel in [(27, 14), (0, 0), (0, 27), (27, 0), (27, 27), (13, 13), (3, 25), (6, 2)]:
        got = measure_receptive_field(model, 28, 28, pixel=pixel)
        assert got == rf.clipped(28, 28, *pixel), pixel
        got_cond = measure_receptive_field(model, 28, 28, pixel=pixel, wrt="cond")
        assert got_cond == model.cond_receptive_field.clipped(28, 28, *pixel), pixel
    assert measure_receptive_field(model, 28, 28, pixel=(0, 0)) == ReceptiveField(frozenset())


def test_paper_mnist_window_picture() -> None:
    picture = LocalPixelCNN(**PAPER_MNIST).receptive_field.grid()
    assert picture.splitlines() == ["#" * 13] * 6 + ["######o......"]


def test_large_config_sees_every_earlier_pixel() -> None:
    torch.manual_seed(0)
    large = LocalPixelCNN(**LARGE)
    pixel = (27, 14)
    got = measure_receptive_field(large, 28, 28, pixel=pixel)
    assert got == large.receptive_field.clipped(28, 28, *pixel)
    assert len(got) == 27 * 28 + 14  # every earlier pixel of a 28 x 28 image
    small = LocalPixelCNN(**PAPER_MNIST).receptive_field.clipped(28, 28, *pixel)
    assert len(got) > 9 * len(small)


def test_plain_masked_stack_has_a_blind_spot() -> None:
    """Why LocalPixelCNN uses two stacks: A then B masked 3 x 3 convs miss the upper right."""
    torch.manual_seed(0)
    n, size, pixel = 4, 12, (10, 5)
    layers: list[nn.Module] = [MaskedConv2d(1, 8, 3, "A"), nn.ELU()]
    for _ in range(n - 1):
        layers += [MaskedConv2d(8, 8, 3, "B"), nn.ELU()]
    net = nn.Sequential(*layers, MaskedConv2d(8, 1, 1, "B")).double()
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, pixel[0], pixel[1]].backward()
    assert x.grad is not None
    seen = {(r - pixel[0], w - pixel[1]) for r, w in (x.grad[0, 0] != 0).nonzero().tolist()}
    # Row -m sees dx in [-n, min(m, n)] (p = 1); the current row sees dx in [-n, -1].
    theory = {(0, dx) for dx in range(-n, 0)}
    theory |= {(-m, dx) for m in range(1, n + 1) for dx in range(-n, min(m, n) + 1)}
    assert seen == theory
    assert (-1, 2) not in seen and (-1, 2) in receptive_field(n, 3).offsets


def test_receptive_field_helpers() -> None:
    rf = receptive_field(1, 3)
    assert rf.offsets == {(0, -1), (-1, -1), (-1, 0), (-1, 1)}
    assert rf.clipped(4, 4, 0, 0).offsets == frozenset()
    assert rf.mask(3, 3, 1, 1).nonzero().tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert receptive_field(1, 3, sees_own_pixel=True).grid() == "###\n#@."
    assert cond_receptive_field(1, 7).offsets == {(0, 0)}
    assert len(receptive_field(3, 1)) == 0


# --- sampling ------------------------------------------------------------------------------


def bernoulli_step(params: Tensor) -> tuple[Tensor, Tensor]:
    dist = torch.distributions.Bernoulli(logits=params[..., 0])
    values = dist.sample()
    return values, dist.log_prob(values).sum(1)


def categorical_step(params: Tensor) -> tuple[Tensor, Tensor]:
    """A 4-level pixel stored as k / 3, with the P = 4 parameters as logits."""
    dist = torch.distributions.Categorical(logits=params)
    k = dist.sample()
    return k / 3.0, dist.log_prob(k).sum(1)


def teacher_forced_log_prob(model: LocalPixelCNN, x: Tensor, cond: Tensor | None) -> Tensor:
    params = model(x, cond)  # one parallel pass, as in training
    if model.n_out_params == 1:
        lp = torch.distributions.Bernoulli(logits=params[:, :, 0]).log_prob(x)
    else:
        k = (x * 3).round().long()
        lp = torch.distributions.Categorical(logits=params.movedim(2, -1)).log_prob(k)
    return lp.sum((1, 2, 3))


RGB_SEQUENTIAL_CATEGORICAL = dict(
    in_channels=3, cond_channels=2, filters=6, n_layers=2, n_out_params=4
)
RGB_JOINT_BERNOULLI = dict(in_channels=3, filters=4, n_layers=2, channel_order="joint")


@pytest.mark.parametrize(
    ("config", "step", "shape"),
    [
        (PAPER_MNIST, bernoulli_step, (3, 1, 10, 9)),
        (RGB_SEQUENTIAL_CATEGORICAL, categorical_step, (2, 3, 6, 6)),
        (RGB_JOINT_BERNOULLI, bernoulli_step, (2, 3, 6, 6)),
    ],
    ids=["mnist_paper_bernoulli", "rgb_sequential_categorical", "rgb_joint_bernoulli"],
)
def test_sampling_agrees_with_training_likelihood(config: dict, step, shape) -> None:
    torch.manual_seed(0)
    model = LocalPixelCNN(**config).double().eval()
    b, _, h, w = shape
    cond = None
    if model.cond_channels:
        cond = torch.randn(b, model.cond_channels, h, w, dtype=torch.float64)
    torch.manual_seed(1)
    x, log_prob = sample_autoregressive(model, cond, shape, step)
    with torch.no_grad():
        expected = teacher_forced_log_prob(model, x, cond)
    torch.testing.assert_close(log_prob, expected, rtol=0, atol=1e-9)


def test_paper_mnist_every_pixel_28x28() -> None:
    """The full 784 x 784 dependency pattern of the paper's decoder equals the closed form."""
    torch.manual_seed(0)
    model = LocalPixelCNN(**PAPER_MNIST)
    got = dependency_mask(model, 28, 28, n_trials=1)
    assert torch.equal(got, expected_dependencies(model, 28, 28, "x"))
