"""Trained points against rate–distortion bounds, on sources whose R(D) is known.

Two synthetic memoryless sources, each coded by a β-VAE trained over a β sweep:

* **Gaussian** x ~ N(0, diag(s^2)) in d dimensions: a *linear* VAE (linear encoder mean,
  learned input-independent posterior std, linear decoder, Gaussian likelihood with unit
  variance, prior N(0, I)). Its loss, ||x - x^||^2 / 2 + β KL, is optimal on R(D) where the
  slope is -1/(2β), i.e. at water level theta = β
  (:func:`benchmarks.analysis.rd_bounds.water_level`): the linear-Gaussian test channel is
  in the model class, so the gap can close.
* **Bernoulli** vectors of n i.i.d. bits with P(1) = p: an MLP VAE with a Bernoulli decoder;
  the reproduction is the decoder's most likely bit x^ = [logit > 0] at z ~ q(z|x), the
  distortion the bit error rate, the bound n R(D) with R(D) from Blahut–Arimoto (checked
  against h(p) - h(D)).

Every point obeys R = E KL(q(z|x) || p(z)) >= I(x; z) >= I(x; x^) >= R(D) (data processing
and the converse of the rate–distortion theorem), so ``gap_nats`` = R - R(D) must be >= 0
up to the sampling error of the held-out estimate. Rates and gaps are nats per source vector.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from benchmarks.analysis import rd_bounds as rd_theory
from benchmarks.analysis.rd_bounds import (
    BERNOULLI_BITS,
    BERNOULLI_P,
    GAUSSIAN_VARIANCES,
    ba_rate_at,
    bernoulli_curve,
    bernoulli_slopes,
)
from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.pixels import load_pixels
from benchmarks.errors import BenchError
from benchmarks.report.rd_theory import ba_figure
from benchmarks.results import read_results
from benchmarks.runs.experiments import Experiment
from benchmarks.runs.store import Job, RunStore
from vlae_models.checkpoint import load
from vlae_models.evaluate import mutual_information_bounds
from vlae_models.zoo import resolve


@dataclass(frozen=True)
class SweepSettings:
    betas: tuple[float, ...]
    steps: int = 3000
    batch_size: int = 512
    lr: float = 3e-3
    train_size: int = 50_000
    test_size: int = 20_000
    seed: int = 0


GAUSSIAN_BETAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
BERNOULLI_BETAS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.0)


class LinearVAE(nn.Module):
    """z ~ N(W_e x + b_e, diag(exp(2 log_std))), x^ = W_d z + b_d (Gaussian, unit variance)."""

    def __init__(self, dims: int, latent: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(dims, latent)
        self.log_std = nn.Parameter(torch.full((latent,), -1.0))
        self.decoder = nn.Linear(latent, dims)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x), self.log_std.exp().expand(len(x), -1)

    def reconstruct(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def distortion(self, x: Tensor, z: Tensor) -> Tensor:
        return 0.5 * (x - self.reconstruct(z)).square().sum(1)  # -log p(x|z) minus a constant


class BernoulliVAE(nn.Module):
    """An MLP encoder to a diagonal Gaussian and an MLP decoder to Bernoulli logits."""

    def __init__(self, dims: int, latent: int, hidden: int = 128) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(dims, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent)
        )
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, dims))

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw = self.encoder(x).chunk(2, dim=1)
        return mean, nn.functional.softplus(raw) + 1e-4

    def reconstruct(self, z: Tensor) -> Tensor:
        return (self.decoder(z) > 0).float()

    def distortion(self, x: Tensor, z: Tensor) -> Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            self.decoder(z), x, reduction="none"
        ).sum(1)


def kl_to_standard_normal(mean: Tensor, std: Tensor) -> Tensor:
    return 0.5 * (mean.square() + std.square() - 1.0 - 2.0 * std.log()).sum(1)


def train_point(model: nn.Module, data: Tensor, beta: float, settings: SweepSettings) -> nn.Module:
    """Minimise E[distortion] + β E[KL] by Adam on minibatches (one reparameterised z each)."""
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps)
    for _ in range(settings.steps):
        batch = data[torch.randint(len(data), (settings.batch_size,), generator=generator)]
        mean, std = model.posterior(batch)
        z = mean + std * torch.randn(mean.shape, generator=generator)
        loss = (model.distortion(batch, z) + beta * kl_to_standard_normal(mean, std)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


@torch.no_grad()
def measure(model: nn.Module, data: Tensor, squared_error: bool, seed: int) -> tuple[float, float]:
    """(D, R) on held-out data: mean total squared error (or bit error rate) of the
    reproduction at one z ~ q(z|x) per vector, and the mean KL in nats."""
    generator = torch.Generator().manual_seed(seed)
    mean, std = model.posterior(data)
    z = mean + std * torch.randn(mean.shape, generator=generator)
    error = model.reconstruct(z) - data
    distortion = error.square().sum(1).mean() if squared_error else error.abs().mean()
    return float(distortion), float(kl_to_standard_normal(mean, std).mean())


def gaussian_point(
    beta: float, settings: SweepSettings, variances: Sequence[float] = GAUSSIAN_VARIANCES
) -> dict:
    """The linear VAE trained at ``beta`` against the Gaussian R(D)."""
    scale = torch.tensor(variances, dtype=torch.float32).sqrt()
    source = torch.Generator().manual_seed(settings.seed + 1)
    train = torch.randn((settings.train_size, len(variances)), generator=source) * scale
    test = torch.randn((settings.test_size, len(variances)), generator=source) * scale
    torch.manual_seed(settings.seed)
    model = train_point(LinearVAE(len(variances), len(variances)), train, beta, settings)
    distortion, rate = measure(model, test, squared_error=True, seed=settings.seed + 2)
    bound = rd_theory.gaussian_rd(variances, distortion)
    optimum = float(np.minimum(beta, np.asarray(variances)).sum())  # theta = β
    return {
        "source": "gaussian", "beta": beta, "distortion": distortion, "rate_nats": rate,
        "bound_nats": bound, "gap_nats": rate - bound, "optimal_distortion": optimum,
        "optimal_rate_nats": rd_theory.gaussian_rd(variances, optimum),
        "distortion_measure": "total squared error", "steps": settings.steps,
        "test_size": settings.test_size,
    }  # fmt: skip


def gaussian_sweep(
    variances: Sequence[float] = GAUSSIAN_VARIANCES, settings: SweepSettings | None = None
) -> pd.DataFrame:
    """The linear VAE at each β against the Gaussian R(D): one row per β."""
    settings = settings or SweepSettings(GAUSSIAN_BETAS)
    return pd.DataFrame([gaussian_point(b, settings, variances) for b in settings.betas])


def bernoulli_point(
    beta: float, settings: SweepSettings, p: float = BERNOULLI_P, bits: int = BERNOULLI_BITS
) -> dict:
    """The MLP VAE trained at ``beta`` on n i.i.d. Bernoulli(p) bits, against n R(D) from
    Blahut–Arimoto."""
    source = torch.Generator().manual_seed(settings.seed + 1)
    train = (torch.rand((settings.train_size, bits), generator=source) < p).float()
    test = (torch.rand((settings.test_size, bits), generator=source) < p).float()
    torch.manual_seed(settings.seed)
    model = train_point(BernoulliVAE(bits, bits), train, beta, settings)
    error_rate, rate = measure(model, test, squared_error=False, seed=settings.seed + 2)
    bound = bits * ba_rate_at(bernoulli_curve(p), error_rate)
    return {
        "source": f"bernoulli(p={p:g}) x {bits}", "beta": beta, "distortion": error_rate,
        "rate_nats": rate, "bound_nats": bound, "gap_nats": rate - bound,
        "closed_form_bound_nats": bits * rd_theory.bernoulli_rd(p, error_rate),
        "distortion_measure": "bit error rate", "steps": settings.steps,
        "test_size": settings.test_size,
    }  # fmt: skip


def bernoulli_sweep(
    p: float = BERNOULLI_P, bits: int = BERNOULLI_BITS, settings: SweepSettings | None = None
) -> pd.DataFrame:
    """The MLP VAE at each β: one row per β."""
    settings = settings or SweepSettings(BERNOULLI_BETAS)
    return pd.DataFrame([bernoulli_point(b, settings, p, bits) for b in settings.betas])


POINTS = {"gaussian": gaussian_point, "bernoulli": bernoulli_point}
SETTINGS = frozenset({"beta", "steps", "batch_size", "lr", "train_size", "test_size", "seed"})


def point_to(experiment: str, out: Path, settings: dict) -> Path:
    """One sweep job of ``experiment`` (:data:`POINTS`) at ``settings`` (β and the
    :class:`SweepSettings` fields) into a run store: one row, ``rate_kind`` ``kl``."""
    given = dict(settings)
    beta = float(given.pop("beta"))
    given["seed"] = int(given.get("seed") or 0)
    row = POINTS[experiment](beta, SweepSettings((beta,), **given))
    store = RunStore(out, Job("rd-theory", {"experiment": experiment, **settings}), overwrite=True)
    with store.running() as run:
        store.add([{
            **row, "dataset": f"{experiment}-source", "split": "test", "method": experiment,
            "param": "beta", "value": beta, "image": "all", "rate_kind": "kl",
            "n_examples": row["test_size"], "run_id": run["run_id"], "job_id": run["job_id"],
        }])  # fmt: skip
    return out


# The experiment arms of benchmarks/specs/rd_theory.toml, joined to the sweep engine through
# this package's own entry points (pyproject.toml, group vlae_bench.experiments).
gaussian_experiment = Experiment(
    SETTINGS, functools.partial(point_to, "gaussian"),
    "a linear VAE on a Gaussian source, against reverse water-filling",
)  # fmt: skip
bernoulli_experiment = Experiment(
    SETTINGS, functools.partial(point_to, "bernoulli"),
    "an MLP VAE on i.i.d. Bernoulli bits, against Blahut–Arimoto",
)  # fmt: skip


def ba_checks() -> pd.DataFrame:
    """Blahut–Arimoto against the closed forms it must reproduce."""
    cases = [(f"bernoulli(p={p:g})", [1 - p, p], lambda d, p=p: rd_theory.bernoulli_rd(p, d))
             for p in (0.5, 0.2, 0.05)]  # fmt: skip
    cases += [(f"uniform({m})", [1 / m] * m, lambda d, m=m: rd_theory.uniform_hamming_rd(m, d))
              for m in (3, 5)]  # fmt: skip
    rows = []
    for name, source, closed_form in cases:
        matrix = rd_theory.hamming(len(source))
        for pt in rd_theory.blahut_arimoto_curve(source, matrix, bernoulli_slopes()):
            rows.append({"source": name, "distortion": pt.distortion, "rate_ba_nats": pt.rate,
                         "rate_closed_form_nats": closed_form(pt.distortion)})  # fmt: skip
    out = pd.DataFrame(rows)
    out["abs_error_nats"] = (out["rate_ba_nats"] - out["rate_closed_form_nats"]).abs()
    return out


@torch.no_grad()
def mutual_info_bounds(model, pixels: Tensor, batch_size: int = 500, seed: int = 0) -> dict:
    """KL and the I(x; z) bound pair of a zoo model's first latent level over ``pixels``."""

    means, stds, kls = [], [], []
    for start in range(0, len(pixels), batch_size):
        x = model.prepare(pixels[start : start + batch_size])
        mean, std = model.posterior_moments(x)[0]
        means.append(mean)
        stds.append(std)
        out = model(x)
        levels = out.extras.get("kl_levels")  # the HVAE: I(x; z_0) against level 0's KL
        kls.append(out.rate if levels is None else levels[:, 0])
    torch.manual_seed(seed)
    lower, upper = mutual_information_bounds(torch.cat(means), torch.cat(stds))
    kl = float(torch.cat(kls).mean())
    return {"kl_nats": kl, "mi_lower_nats": lower, "mi_upper_loo_nats": upper,
            "mi_upper_nats": min(upper, kl), "log_n": math.log(len(pixels))}  # fmt: skip


ZOO_MODELS = ("beta-vae-binarized-mnist", "hvae-binarized-mnist", "vlae-binarized-mnist")


def committed_beta_runs(run: Path) -> pd.DataFrame:
    """I(x; z) <= KL on a β sweep's evaluation rows (``run``: its folder; ELBO surgery, one z
    per image; ``saturated`` where the estimate is within 0.05 nats of its log N ceiling)."""

    rows = read_results([run])  # checksum-verified; a missing folder is a one-line error
    if not {"arm", "kl_nats", "mutual_info_nats"} <= set(rows.columns):
        raise BenchError(f"{run} holds no arm, KL and I(x;z) columns: not a β sweep's run")
    rows = rows[rows["mutual_info_nats"].notna() & rows["kl_nats"].notna()]
    table = rows[["arm", "value", "estimator", "n_examples", "kl_nats", "mutual_info_nats"]]
    table = table.drop_duplicates().rename(columns={"value": "beta", "estimator": "pass"})
    table["log_n"] = np.log(table["n_examples"])
    table["mi_at_most_kl"] = table["mutual_info_nats"] <= table["kl_nats"] + 1e-9
    table["saturated"] = table["mutual_info_nats"] > table["log_n"] - 0.05
    return table.reset_index(drop=True)


def zoo_mutual_info(pixels: Tensor, names: Sequence[str] = ZOO_MODELS) -> pd.DataFrame:
    """The bound pair of :func:`mutual_info_bounds` for the zoo's binarized-MNIST models."""

    rows = []
    for name in names:
        model, _ = load(resolve(f"zoo:{name}"), device="cpu", weights="ema")
        bounds = mutual_info_bounds(model.eval(), pixels)
        rows.append({"model": name, "images": len(pixels), **bounds})
    return pd.DataFrame(rows)


def run(
    out: Path,
    *,
    data_dir: Path | None = None,
    beta_sweep: Path | None = None,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, pd.DataFrame]:
    """The checks that train nothing, into ``out``: Blahut–Arimoto against the closed forms
    (``ba_check.csv``, ``blahut_arimoto.png``) and I(x; z) <= KL on a committed β sweep and the
    zoo's models (``mutual_info_*.csv``). The trained points are the ``rd_theory.toml`` spec's."""

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BenchError(f"{out} is not empty: give a new folder or --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    tables = {"ba_check": ba_checks()}
    if beta_sweep is not None:
        tables["mutual_info_beta_sweep"] = committed_beta_runs(beta_sweep)
    try:
        pixels = load_pixels("binarized-mnist", "test", data_dir)
        tables["mutual_info_zoo"] = zoo_mutual_info(pixels)
    except DatasetError as err:  # no MNIST here: the rest still stands
        echo(f"note: zoo I(x;z) skipped: {err}")
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    ba_figure(tables["ba_check"], out / "blahut_arimoto.png")
    return tables
