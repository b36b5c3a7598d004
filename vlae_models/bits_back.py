"""Bits-back coding with ANS (BB-ANS; Townsend, Bird & Barber 2019, arXiv:1901.04866).

A latent-variable model turns into a lossless code whose length per image approaches its
negative ELBO, the MDL sum L(z) + L(x|z) minus the bits the posterior gives back:

    encode x:  pop z with q(z|x)   (takes -log Q(z|x) bits off the stack: the "bits back")
               push x with p(x|z)
               push z with p(z)
    decode:    pop z with p(z), pop x with p(x|z), push z with q(z|x)  (the stack is restored)

The stack is `constriction`'s rANS coder (``AnsCoder``: 32-bit words, 24-bit probabilities);
nothing here codes a bit itself. What this module adds is the discretization and the order.

Latents are discretized on a grid of bins of width ``2**-latent_bits`` in the *prior's*
standardized coordinates u = (z - mu_p) / sigma_p, out to ``LATENT_RANGE`` standard deviations
either side (:class:`LatentGrid`). Prior and posterior are both Gaussians in u, so both are
``QuantizedGaussian`` models on the same integer bins, and the decoded z is a bin centre.

* β-VAE: u = z (prior N(0, I)); the 32 posterior dimensions are independent.
* HVAE: level by level in generation order (:class:`HVAECoder`). Its inference is top-down,
  q(z_l | x, z_<l), so every level's posterior needs x: all levels are popped before x is
  pushed. Bit-Swap's interleaving (Kingma et al. 2019) needs a bottom-up Markov posterior
  q(z_l+1 | z_l) and does not apply; this is the order of HiLLoC (Townsend et al. 2020).
* Hierarchical VLAE: the HVAE's order, its top level coded in the flow's noise coordinates
  as the VLAE's latent is, and its pixels as the VLAE's (:class:`HierarchicalVLAECoder`).
* VLAE: the autoregressive-flow prior is a standard normal in eps = f(z) (mean-only steps,
  so |det df/dz| = 1). The latent is coded in eps. The coded posterior is q(z|x) pushed
  through f linearized at the posterior mean, a full-covariance Gaussian N(f(mu), J S J^T)
  with the same entropy as q, popped one dimension at a time through its Cholesky factor
  (:class:`VLAECoder`). The PixelCNN scores x in one pass when encoding and is run pixel by
  pixel, with its activations cached, when decoding; both use the arithmetic of
  :mod:`vlae_models.layers.pixel_steps`, which gives the same logits bit for bit (checked by
  the tests), as the code needs.

Encoder and decoder must compute every probability from the same floats. Each network runs
on the same batch (the lanes' current images) on both sides, Bernoulli logits go through
one fixed table (:func:`bernoulli_probs`), and the Gaussian parameters are plain float64
arithmetic of network outputs.

Lanes. Independent chains ("lanes") are coded side by side, each on its own stack, with the
networks batched across them: this is how the VLAE's sequential decoding is parallelised.
Every lane starts from its own initial bits: random words from a fixed seed, as few as its
first posterior pop needs (:func:`encode_lanes`). They are part of the message and counted;
decoding checks that each lane returns to exactly them, so a damaged message is detected.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vlae_models.core import LatentModel, ModelError
from vlae_models.layers.pixel_steps import PixelSteps, pixelcnn_params

LATENT_RANGE = 10.0  # prior standard deviations covered by the latent grid, either side
POSTERIOR_WINDOW = 6.0  # posterior draws are confined to +-6 std (mass outside: 2e-9)
LOGIT_SCALE = 256  # Bernoulli logits are rounded to 1/256 before the table lookup
LOGIT_LIMIT = 32.0
SEED_TAG = 0xB175BAC  # the initial bits of lane i are drawn from default_rng([SEED_TAG, i])


class BitsBackError(ModelError):
    """A model that bits-back coding does not support, or a message that does not decode."""


@dataclass
class _Windows:
    """Each posterior symbol's window (see :meth:`Lanes.pop_posterior`), for a batch of rows
    (lanes) at once: its centre bin, the mean's offset from it and the std, in bins, and per
    row the groups of dimensions that share a half-width (a power of two at least
    ``POSTERIOR_WINDOW`` standard deviations, in bins), narrowest first."""

    centre: np.ndarray
    offset: np.ndarray
    scale: np.ndarray
    groups: list[list[tuple[np.ndarray, int]]]

    @classmethod
    def of(cls, grid: LatentGrid, mean: np.ndarray, std: np.ndarray) -> _Windows:
        centre = np.round(mean / grid.step).astype(np.int64)
        half = np.ceil(POSTERIOR_WINDOW * std / grid.step).clip(1, grid.limit)
        half = (2 ** np.ceil(np.log2(half))).astype(np.int64)
        groups = [[(np.flatnonzero(row == h), int(h)) for h in np.unique(row)] for row in half]
        return cls(centre, (mean - grid.value(centre)) / grid.step, std / grid.step, groups)


@functools.lru_cache(maxsize=64)
def _window_family(half: int):
    return _ans().model.QuantizedGaussian(-half, half)


def _ans():
    import constriction

    return constriction.stream


@dataclass(frozen=True)
class LatentGrid:
    """Bins of width ``2**-bits`` prior standard deviations, symbols -limit..limit."""

    bits: int

    @property
    def step(self) -> float:
        return 2.0**-self.bits

    @property
    def limit(self) -> int:
        return int(LATENT_RANGE / self.step)

    def family(self):
        return _ans().model.QuantizedGaussian(-self.limit, self.limit)

    def value(self, symbols: np.ndarray) -> np.ndarray:
        """Bin centres in standardized units, float64."""
        return symbols.astype(np.float64) * self.step


_TABLE = 1.0 / (1.0 + np.exp(-np.arange(-LOGIT_LIMIT * LOGIT_SCALE, LOGIT_LIMIT * LOGIT_SCALE + 1)
                             / LOGIT_SCALE))  # fmt: skip


def bernoulli_probs(logits: Tensor) -> np.ndarray:
    """P(x = 1) for logits, through a fixed table: the same logits give the same floats on
    every side (a vectorised exp may round differently for the same input); rounding the
    logit to 1/256 costs under 1e-5 nats a pixel."""
    index = torch.round(logits.detach().double().clamp(-LOGIT_LIMIT, LOGIT_LIMIT) * LOGIT_SCALE)
    return _TABLE[index.cpu().numpy().astype(np.int64) + int(LOGIT_LIMIT * LOGIT_SCALE)]


@dataclass
class Lanes:
    """Independent ANS stacks side by side; every coding call takes the indices of the lanes
    it acts on and one row of parameters per lane."""

    coders: list

    @classmethod
    def from_words(cls, words: Sequence[np.ndarray]) -> Lanes:
        return cls([_ans().stack.AnsCoder(np.asarray(w, dtype=np.uint32)) for w in words])

    def bits(self, lane: int) -> int:
        return int(self.coders[lane].num_valid_bits())

    def words(self, lane: int) -> np.ndarray:
        return self.coders[lane].get_compressed()

    def pop_gaussian(self, lanes: Sequence[int], grid: LatentGrid, mean, std) -> np.ndarray:
        """One symbol per entry of mean/std (rows = lanes, standardized units) on the grid."""
        family = grid.family()
        return np.stack(
            [
                self.coders[lane].decode(family, mean[i] / grid.step, std[i] / grid.step)
                for i, lane in enumerate(lanes)
            ]
        )

    def push_gaussian(self, lanes, grid: LatentGrid, symbols, mean, std) -> None:
        family = grid.family()
        for i, lane in enumerate(lanes):
            self.coders[lane].encode_reverse(
                symbols[i].astype(np.int32), family, mean[i] / grid.step, std[i] / grid.step
            )

    def pop_standard(self, lanes: Sequence[int], grid: LatentGrid, dims: int) -> np.ndarray:
        """``dims`` symbols per lane under the prior, N(0, 1) in standardized units."""
        zeros = np.zeros((len(lanes), dims))
        return self.pop_gaussian(lanes, grid, zeros, zeros + 1.0)

    def push_standard(self, lanes: Sequence[int], grid: LatentGrid, symbols) -> None:
        zeros = np.zeros(symbols.shape)
        self.push_gaussian(lanes, grid, symbols, zeros, zeros + 1.0)

    def pop_posterior(self, lanes: Sequence[int], grid: LatentGrid, mean, std) -> np.ndarray:
        """Like :meth:`pop_gaussian`, each symbol drawn from its own window (:class:`_Windows`):
        the coder gives every symbol of an alphabet a floor probability of 2**-24, and a draw
        from a far wider alphabet lands in a far bin that often (a window as wide as the
        widest dimension's cost the β-VAE +0.003 bits/dim at 8 latent bits, +0.03 at 12)."""
        w = _Windows.of(grid, mean, std)
        out = np.zeros(np.shape(mean), dtype=np.int32)
        for i, lane in enumerate(lanes):
            coder = self.coders[lane]
            for dims, half in w.groups[i]:
                out[i, dims] = w.centre[i, dims] + coder.decode(
                    _window_family(half), w.offset[i, dims], w.scale[i, dims]
                )
        return out

    def push_posterior(self, lanes, grid: LatentGrid, symbols, mean, std) -> None:
        """The inverse of :meth:`pop_posterior`: the same windows, pushed in reverse order."""
        w = _Windows.of(grid, mean, std)
        relative = (symbols - w.centre).astype(np.int32)
        for i, lane in enumerate(lanes):
            coder = self.coders[lane]
            for dims, half in reversed(w.groups[i]):
                coder.encode_reverse(relative[i, dims], _window_family(half), w.offset[i, dims],
                                     w.scale[i, dims])  # fmt: skip

    def push_bernoulli(self, lanes, bits: np.ndarray, probs: np.ndarray) -> None:
        family = _ans().model.Bernoulli(perfect=False)
        for i, lane in enumerate(lanes):
            self.coders[lane].encode_reverse(bits[i].astype(np.int32), family, probs[i])

    def pop_bernoulli(self, lanes, probs: np.ndarray) -> np.ndarray:
        family = _ans().model.Bernoulli(perfect=False)
        return np.stack(
            [self.coders[lane].decode(family, probs[i]) for i, lane in enumerate(lanes)]
        )


@dataclass
class StepBits:
    """Bits one image moved on its lane's stack: taken by the posterior, added by the data and
    the prior. Net cost = data + prior - posterior."""

    posterior: list[int] = field(default_factory=list)
    data: list[int] = field(default_factory=list)
    prior: list[int] = field(default_factory=list)


def _measure(
    lanes: Lanes, active: Sequence[int], action: Callable[[], object], into: list[int],
    sign: int = 1,
):  # fmt: skip
    """Run ``action`` and append each lane's change of stack size, times ``sign``."""
    before = [lanes.bits(lane) for lane in active]
    out = action()
    into.extend(sign * (lanes.bits(lane) - b) for lane, b in zip(active, before, strict=True))
    return out


class BitsBackCoder(abc.ABC):
    """One model family's BB-ANS: the three pops and pushes of an image, batched over lanes.

    ``latents`` is whatever a family needs to recompute its distributions (symbols and the
    decoded values); the encoder and the decoder rebuild it identically.
    """

    # Images a lane codes in a task: fewer lanes cost fewer initial bits, more batch the
    # networks wider. The HVAE pops all its levels before it pushes (4000 initial bits a lane).
    images_per_lane: int = 100

    def __init__(self, model: LatentModel, grid: LatentGrid) -> None:
        likelihood = getattr(model, "likelihood", None)
        if getattr(likelihood, "name", None) != "bernoulli":
            raise BitsBackError(
                f"bits-back coding here needs a Bernoulli likelihood (binary images); "
                f"'{model.registry_name}' has '{getattr(likelihood, 'name', None)}'"
            )
        self.model, self.grid = model, grid

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, lanes: Lanes, active: list[int], x: Tensor, bits: StepBits) -> None:
        pop = lambda: self.pop_posterior(lanes, active, x)  # noqa: E731
        latents = _measure(lanes, active, pop, bits.posterior, sign=-1)  # bits taken back
        _measure(lanes, active, lambda: self.push_data(lanes, active, x, latents), bits.data)
        _measure(lanes, active, lambda: self.push_prior(lanes, active, latents), bits.prior)

    def decode(self, lanes: Lanes, active: list[int]) -> Tensor:
        latents = self.pop_prior(lanes, active)
        x = self.pop_data(lanes, active, latents)
        self.push_posterior(lanes, active, x, latents)
        return x

    @property
    @abc.abstractmethod
    def latent_dims(self) -> int:
        """Latent dimensions per image (sizes the initial bits)."""

    @abc.abstractmethod
    def pop_posterior(self, lanes: Lanes, active: list[int], x: Tensor): ...

    @abc.abstractmethod
    def push_posterior(self, lanes: Lanes, active: list[int], x: Tensor, latents) -> None: ...

    def pop_prior(self, lanes: Lanes, active: list[int]):
        """One level of latents under N(0, I) (the β-VAE's z, the VLAE's eps)."""
        return lanes.pop_standard(active, self.grid, self.latent_dims)

    def push_prior(self, lanes: Lanes, active: list[int], latents) -> None:
        lanes.push_standard(active, self.grid, latents)

    @abc.abstractmethod
    def logits(self, x: Tensor, latents) -> Tensor:
        """Bernoulli logits of p(x | z), (B, C, H, W), from one parallel pass."""

    def push_data(self, lanes: Lanes, active: list[int], x: Tensor, latents) -> None:
        probs = bernoulli_probs(self.logits(x, latents).flatten(1))
        lanes.push_bernoulli(active, x.flatten(1).cpu().numpy(), probs)

    def pop_data(self, lanes: Lanes, active: list[int], latents) -> Tensor:
        shape = (len(active), *self.image_shape)
        blank = torch.zeros(shape, device=self.device)
        probs = bernoulli_probs(self.logits(blank, latents).flatten(1))  # p(x|z) ignores x here
        return torch.from_numpy(lanes.pop_bernoulli(active, probs)).float().view(shape).to(blank)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        config = self.model.config
        return (config.in_channels, config.image_size, config.image_size)


def _kept(into: list, symbols: np.ndarray) -> np.ndarray:
    into.append(symbols)
    return symbols


def _np(t: Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _tensor(values: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(values).to(device=like.device, dtype=torch.float32)


class BetaVAECoder(BitsBackCoder):
    """β-VAE: q(z|x) = N(mu, sigma) per dimension, p(z) = N(0, I); u = z."""

    @property
    def latent_dims(self) -> int:
        return self.model.config.latent_dim

    def pop_posterior(self, lanes, active, x):
        mean, std = (_np(t) for t in self.model.encode(x))
        return lanes.pop_posterior(active, self.grid, mean, std)

    def push_posterior(self, lanes, active, x, symbols):
        mean, std = (_np(t) for t in self.model.encode(x))
        lanes.push_posterior(active, self.grid, symbols, mean, std)

    def logits(self, x, symbols):
        return self.model.decode(_tensor(self.grid.value(symbols), self.model.decoder_in.weight))


class HVAECoder(BitsBackCoder):
    """Hierarchical VAE: levels in generation order, each in its prior's standardized units.

    ``latents`` is the list of each level's symbols. Level l's prior N(mu_p, sigma_p) comes
    from the top-down state after the decoded levels above it, which encoder and decoder
    compute alike; z_l = mu_p + sigma_p * u with u the bin centre.
    """

    images_per_lane = 1000

    @property
    def latent_dims(self) -> int:
        c = self.model.config
        return c.levels * c.z_channels * (c.image_size // 4) ** 2

    def _walk(self, n: int, x: Tensor | None, next_symbols) -> tuple[Tensor, list]:
        """The model's top-down pass with z_l from ``next_symbols(level, posterior)`` (the
        posterior None when x is None); returns the final state h and the symbols."""
        symbols: list[np.ndarray] = []

        def z_of_symbols(i: int, prior, post) -> Tensor:
            return self._level_z(i, prior, post, lambda q: _kept(symbols, next_symbols(i, q)))

        feats = self.model.encode(x) if x is not None else None
        return self.model.top_down(n, z_of_symbols, feats), symbols

    def _level_z(self, i: int, prior, post, symbols_for) -> Tensor:
        """Level i's z from its symbols, ``symbols_for(posterior)``: the posterior in the
        prior's standardized units, and z_l = mu_p + sigma_p * u with u the bin centre."""
        shape = prior[0].shape
        p_mean, p_std = _np(prior[0].flatten(1)), _np(prior[1].flatten(1))
        q = None
        if post is not None:
            q_mean, q_std = _np(post[0].flatten(1)), _np(post[1].flatten(1))
            q = ((q_mean - p_mean) / p_std, q_std / p_std)
        s = symbols_for(q)
        return _tensor(p_mean + p_std * self.grid.value(s), prior[0]).view(shape)

    def _pop_level(self, lanes: Lanes, active: list[int], q) -> np.ndarray:
        if isinstance(q, _FlowPosterior):  # popped one dimension at a time
            pop = lambda i, m, s: lanes.pop_posterior(active, self.grid, m[:, None],  # noqa: E731
                                                      s[:, None])[:, 0]  # fmt: skip
            return q.walk(self.grid, pop)
        return lanes.pop_posterior(active, self.grid, *q)

    def _push_level(self, lanes: Lanes, active: list[int], symbols: np.ndarray, q) -> None:
        if isinstance(q, _FlowPosterior):
            q.push(lanes, active, self.grid, symbols)
        else:
            lanes.push_posterior(active, self.grid, symbols, *q)

    def pop_posterior(self, lanes, active, x):
        _, symbols = self._walk(len(active), x, lambda i, q: self._pop_level(lanes, active, q))
        return symbols

    def push_posterior(self, lanes, active, x, symbols):
        posteriors = []

        def known(i, q):
            posteriors.append(q)
            return symbols[i]

        self._walk(len(active), x, known)
        for s, q in reversed(list(zip(symbols, posteriors, strict=True))):
            self._push_level(lanes, active, s, q)

    def pop_prior(self, lanes, active):
        dims = self.latent_dims // self.model.config.levels
        return [lanes.pop_standard(active, self.grid, dims) for _ in self.model.levels]

    def push_prior(self, lanes, active, symbols):
        for level in reversed(symbols):  # level 0 last: the decoder pops it first
            lanes.push_standard(active, self.grid, level)

    def logits(self, x, symbols):
        h, _ = self._walk(len(symbols[0]), None, lambda i, q: symbols[i])
        return self.model.decoder(h)


@dataclass
class _FlowPosterior:
    """A posterior coded in an autoregressive flow's noise coordinates eps = f(z): q(z|x)
    pushed through f linearized at the posterior mean, N(f(mu), J S J^T) (the same entropy
    as q for a volume-preserving flow), popped one dimension at a time through its Cholesky
    factor."""

    mean: np.ndarray  # (B, D)
    chol: np.ndarray  # (B, D, D), lower triangular

    @classmethod
    def of(cls, flow, mean: Tensor, std: Tensor) -> _FlowPosterior:
        """From q(z|x) = N(mean, std), each (B, D), and the flow prior (None: eps = z)."""
        if flow is None:
            eps, jac = mean, torch.eye(mean.shape[1]).expand(len(mean), -1, -1)
        else:
            eps = flow(mean.float())[0]
            f = lambda z: flow(z.unsqueeze(0))[0].squeeze(0)  # noqa: E731
            jac = torch.func.vmap(torch.func.jacrev(f))(mean.float().detach())
        j, var = _np(jac), _np(std) ** 2
        cov = np.einsum("bij,bj,bkj->bik", j, var, j)
        return cls(_np(eps), np.linalg.cholesky(cov))

    def walk(self, grid: LatentGrid, next_symbol) -> np.ndarray:
        """Dimension by dimension: the conditional N(m_i, s_i) of eps_i given the decoded
        eps_<i, handed to ``next_symbol(i, m_i, s_i)``, which pops or returns a symbol. Popping
        and pushing run this same loop, so both see the same floats."""
        b, d = self.mean.shape
        white = np.zeros((b, d))
        symbols = np.zeros((b, d), dtype=np.int32)
        for i in range(d):
            m = self.mean[:, i] + (self.chol[:, i, :i] * white[:, :i]).sum(1)
            s = self.chol[:, i, i]
            symbols[:, i] = next_symbol(i, m, s)
            white[:, i] = (grid.value(symbols[:, i]) - m) / s
        return symbols

    def push(self, lanes: Lanes, active: list[int], grid: LatentGrid, symbols: np.ndarray):
        """The inverse of popping through :meth:`walk`: the same conditionals, in reverse."""
        means, stds = [], []

        def known(i, m, s):
            means.append(m)
            stds.append(s)
            return symbols[:, i]

        self.walk(grid, known)
        for i in reversed(range(symbols.shape[1])):
            lanes.push_posterior(
                active, grid, symbols[:, i : i + 1], means[i][:, None], stds[i][:, None]
            )


class VLAECoder(BitsBackCoder):
    """VLAE: the latent coded in the flow prior's noise coordinates eps ~ N(0, I)."""

    def __init__(self, model: LatentModel, grid: LatentGrid) -> None:
        super().__init__(model, grid)
        _check_pixel_coder(model)

    @property
    def latent_dims(self) -> int:
        return self.model.config.z_dim

    def _posterior(self, x: Tensor) -> _FlowPosterior:
        return _FlowPosterior.of(self.model.prior, *self.model.encode(x))

    def pop_posterior(self, lanes, active, x):
        pop = lambda i, m, s: lanes.pop_posterior(active, self.grid, m[:, None],  # noqa: E731
                                                  s[:, None])[:, 0]  # fmt: skip
        return self._posterior(x).walk(self.grid, pop)

    def push_posterior(self, lanes, active, x, symbols):
        self._posterior(x).push(lanes, active, self.grid, symbols)

    def _condition(self, symbols: np.ndarray) -> Tensor:
        eps = _tensor(self.grid.value(symbols), self.model.cond_in.weight)
        z = eps if self.model.prior is None else self.model.prior.inverse(eps)
        return self.model.condition(z)

    def logits(self, x, symbols):
        """One pass with the stepped decoder's arithmetic (:mod:`vlae_models.layers.pixel_steps`),
        so the encoder's logits equal the pixel-by-pixel decoder's bit for bit."""
        return pixelcnn_params(self.model.decoder.net, x, self._condition(symbols))[:, :, 0]

    def pop_data(self, lanes, active, symbols):
        return pop_pixels(lanes, active, self.model.decoder.net, self._condition(symbols),
                          self.image_shape)  # fmt: skip


class HierarchicalVLAECoder(HVAECoder):
    """Hierarchical VLAE: the HVAE's levels, the top one in the flow's noise coordinates
    (its prior N(0, I), its posterior the VLAE's linearized one), and the VLAE's pixels."""

    def __init__(self, model: LatentModel, grid: LatentGrid) -> None:
        super().__init__(model, grid)
        _check_pixel_coder(model)

    def _level_z(self, i: int, prior, post, symbols_for) -> Tensor:
        if i > 0 or self.model.prior is None:  # a Gaussian prior: the HVAE's standardized units
            return super()._level_z(i, prior, post, symbols_for)
        q = None if post is None else _FlowPosterior.of(
            self.model.prior, post[0].flatten(1), post[1].flatten(1)
        )  # fmt: skip
        eps = self.grid.value(symbols_for(q))
        return self.model.from_noise(_tensor(eps, prior[0]))

    def _condition(self, symbols: list[np.ndarray]) -> Tensor:
        h, _ = self._walk(len(symbols[0]), None, lambda i, q: symbols[i])
        return self.model.cond_net(h)

    def logits(self, x, symbols):
        return pixelcnn_params(self.model.decoder.net, x, self._condition(symbols))[:, :, 0]

    def pop_data(self, lanes, active, symbols):
        return pop_pixels(lanes, active, self.model.decoder.net, self._condition(symbols),
                          self.image_shape)  # fmt: skip


def _check_pixel_coder(model: LatentModel) -> None:
    prior = model.prior
    if prior is not None and not prior.mean_only:
        raise BitsBackError("bits-back coding needs a volume-preserving (mean-only) flow prior")
    if next(model.parameters()).device.type != "cpu":  # pixel_steps' equality is the CPU's
        raise BitsBackError(f"bits-back coding of a '{model.registry_name}' runs on the CPU "
                            "(--device cpu)")  # fmt: skip


def pop_pixels(lanes: Lanes, active: list[int], net, cond: Tensor, image_shape) -> Tensor:
    """Binary images popped pixel by pixel with the PixelCNN's cached steps
    (:class:`~vlae_models.layers.pixel_steps.PixelSteps`), one pop per pixel and lane."""
    c, height, width = image_shape
    if c != 1:
        raise BitsBackError("bits-back decoding with a PixelCNN is implemented for one channel")
    state = PixelSteps(net, cond, (len(active), c, height, width))
    x = torch.zeros((len(active), c, height, width), device=state.device)
    family = _ans().model.Bernoulli(perfect=False)
    for row in range(height):
        state.start_row(row)
        for col in range(width):
            probs = bernoulli_probs(state.pixel(row, col)[:, 0, 0])
            bits = [lanes.coders[lane].decode(family, probs[i : i + 1])[0]
                    for i, lane in enumerate(active)]  # fmt: skip
            values = torch.tensor(bits, dtype=x.dtype, device=x.device)
            state.write(row, col, slice(0, 1), values[:, None])
            x[:, 0, row, col] = values
    return x


CODERS: dict[str, type[BitsBackCoder]] = {
    "beta-vae": BetaVAECoder,
    "hvae": HVAECoder,
    "vlae": VLAECoder,
    "hierarchical-vlae": HierarchicalVLAECoder,
}


def coder_for(model: LatentModel, latent_bits: int) -> BitsBackCoder:
    """The BB-ANS coder of ``model`` at a latent precision of ``latent_bits``."""
    name = getattr(model, "registry_name", type(model).__name__)
    if name not in CODERS:
        raise BitsBackError(
            f"no bits-back coder for '{name}' (supported: {', '.join(CODERS)}); a VQ-VAE has "
            "discrete codes and the PixelCNN no latent code: neither needs bits back"
        )
    if not 1 <= latent_bits <= 16:
        raise BitsBackError(f"latent_bits must be in 1..16, got {latent_bits}")
    return CODERS[name](model, LatentGrid(latent_bits))


@dataclass
class Message:
    """A BB-ANS message: each lane's words (its initial bits included) and image count, and
    what each image moved on its stack (images in input order)."""

    words: list[np.ndarray]
    lengths: list[int]
    initial_bits: list[int]
    steps: StepBits

    @property
    def total_bits(self) -> int:
        return 32 * sum(len(w) for w in self.words)

    def image_bits(self) -> np.ndarray:
        """Each image's share of the message, summing to ``total_bits``: its net push, plus
        its lane's initial bits on the lane's first image and the final word's padding on
        the last."""
        net = (
            np.array(self.steps.data) + np.array(self.steps.prior) - np.array(self.steps.posterior)
        )
        out = net.astype(np.int64)
        for lane, (start, n) in enumerate(_lane_spans(self.lengths)):
            if n:
                out[start] += self.initial_bits[lane]
                out[start + n - 1] += 32 * len(self.words[lane]) - (
                    self.initial_bits[lane] + int(net[start : start + n].sum())
                )
        return out


def _lane_spans(lengths: Sequence[int]) -> list[tuple[int, int]]:
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    return [(int(s), int(n)) for s, n in zip(starts, lengths, strict=True)]


def lane_lengths(n_images: int, n_lanes: int) -> list[int]:
    """Contiguous, near-equal lanes: the first n % lanes get one image more."""
    n_lanes = max(1, min(n_lanes, n_images))
    return [n_images // n_lanes + (lane < n_images % n_lanes) for lane in range(n_lanes)]


def seed_words(lane: int, n: int) -> np.ndarray:
    """Lane ``lane``'s initial bits: ``n`` nonzero pseudo-random words (a prefix-stable draw)."""
    return np.random.default_rng([SEED_TAG, lane]).integers(1, 2**32, n, dtype=np.uint32)


def schedule(lengths: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Per step t: the lanes still coding and the index of their t-th image."""
    spans = _lane_spans(lengths)
    return [
        ([lane for lane, (_, n) in enumerate(spans) if n > t],
         [start + t for start, n in spans if n > t])
        for t in range(max(lengths, default=0))
    ]  # fmt: skip


def _initial_lanes(coder: BitsBackCoder, x: Tensor, active: list[int]) -> tuple[Lanes, list[int]]:
    """Each lane's initial words, as few as its first posterior pop takes without running its
    stack dry (a dry stack decodes the grid's edge bins: valid, but very costly)."""
    sizes = [max(2, math.ceil(coder.latent_dims * (coder.grid.bits + 2) / 64))] * len(active)

    def seeded() -> Lanes:
        return Lanes.from_words(
            [seed_words(lane, n) for lane, n in zip(active, sizes, strict=True)]
        )

    while True:
        trial = seeded()
        coder.pop_posterior(trial, list(range(len(active))), x)
        dry = [i for i in range(len(active)) if trial.bits(i) < 64]
        if not dry:
            return seeded(), sizes
        for i in dry:
            sizes[i] = math.ceil(sizes[i] * 1.25) + 1


@torch.no_grad()
def encode_lanes(coder: BitsBackCoder, x: Tensor, n_lanes: int = 1) -> Message:
    """BB-ANS of the images x (N, C, H, W) in ``n_lanes`` chains coded side by side."""
    lengths = lane_lengths(len(x), n_lanes)
    steps_plan = schedule(lengths)
    first_active, first_images = steps_plan[0]
    lanes, sizes = _initial_lanes(coder, x[first_images], first_active)
    steps = StepBits()
    order: list[int] = []
    for active, images in steps_plan:
        coder.encode(lanes, active, x[images], steps)
        order += images
    steps = _reorder(steps, order)
    words = [lanes.words(lane) for lane in range(len(lengths))]
    return Message(words, lengths, [32 * n for n in sizes], steps)


def _reorder(steps: StepBits, order: list[int]) -> StepBits:
    back = np.argsort(order)
    return StepBits(*(np.asarray(v)[back].tolist() for v in
                      (steps.posterior, steps.data, steps.prior)))  # fmt: skip


@torch.no_grad()
def decode_lanes(
    coder: BitsBackCoder, words: Sequence[np.ndarray], lengths: Sequence[int]
) -> Tensor:
    """The images of a message, in input order; raises BitsBackError when a lane does not
    come back to exactly its initial bits (the message was damaged or is not this model's)."""
    if len(words) != len(lengths) or min(lengths, default=0) < 1:
        raise BitsBackError(f"message has {len(words)} lanes for {len(lengths)} image counts")
    lanes = Lanes.from_words(words)
    out = torch.zeros((sum(lengths), *coder.image_shape), device=coder.device)
    try:
        for active, images in reversed(schedule(lengths)):
            out[images] = coder.decode(lanes, active)
    except (KeyError, ValueError, RuntimeError, OverflowError) as err:  # constriction's refusals
        raise BitsBackError(f"message is damaged: its bits do not decode ({err})") from None
    for lane in range(len(lengths)):
        rest = lanes.words(lane)
        if not np.array_equal(rest, seed_words(lane, len(rest))):
            raise BitsBackError(
                f"message is damaged: lane {lane} did not return to its initial bits (or it was "
                "written by other weights or settings)"
            )
    return out
