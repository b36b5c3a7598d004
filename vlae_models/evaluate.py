"""Evaluation of a model on one dataset split, returned as tidy result rows.

What is measured (all per image, averaged over the split):

* ELBO decomposition: rate (KL, or code length for VQ) and distortion -log p(x|z) in nats,
  negative ELBO = rate + distortion, in nats and bits/dim.
* IWAE: log p(x) >= E log (1/k) sum_i p(x, z_i) / q(z_i|x) with k samples (Burda et al.
  2016), vectorised over k in chunks (see ``LatentModel.log_likelihood``).
* Active units (Burda et al. 2016): latent dimension u is active if Cov_x(E_q[u]) > 0.01;
  per level for hierarchical models (deeper levels along the posterior-mean path).
* Mutual information I(x; z) by ELBO surgery (Hoffman & Johnson 2016): rate = I(x; z) +
  KL(q(z) || p(z)) with q(z) the aggregate posterior of the evaluated images. We estimate
  I = E_x E_{q(z|x)} [log q(z|x) - log q(z)], log q(z) = logmeanexp_n log q(z | x_n), with
  one z per image, over at most ``mi_max_examples`` images (a random subset beyond that).
  The estimate cannot exceed log N; ``mutual_info_upper_nats`` is the leave-one-out estimate,
  an upper bound without that ceiling (:func:`mutual_information_bounds`). For a hierarchical
  VAE only the top level's q(z_0|x) depends on x alone, so only I(x; z_0) is reported
  (``mutual_info_nats_l0``, ``mutual_info_upper_nats_l0``).
* VQ-VAE: codebook perplexity exp(H(p)) and usage (fraction of codes used at least once) of
  the code histogram over the whole split (not per batch, which depends on batch size).
* Reconstruction quality is not measured here: a checkpoint run as a method
  (``vlae-bench codecs -c model:CKPT``, :mod:`baselines.models`) gives one row per image with
  PSNR, SSIM or the bit error rate from :mod:`benchmarks.metrics.image`, like every codec.

Row layout (one row per split and rate kind, so result aggregation never mixes estimators):

* Continuous latents: one row, ``rate_kind="kl"``. ``rate_nats`` = ``kl_nats`` = KL,
  ``distortion_nats``, ``neg_elbo_nats`` and ``elbo_bits_per_dim``. ``nll_nats`` and
  ``bits_per_dim`` hold the best likelihood estimate made: the IWAE bound when ``iw_samples``
  > 0 (``estimator="iwae"``, ``iw_samples`` = k), else the negative ELBO
  (``estimator="elbo"``); for a model without latents (the unconditional PixelCNN) the
  exact NLL, with no IWAE pass (``estimator="exact"``). ``bpp`` = rate in bits / (H*W).
  Per-level columns ``kl_nats_l{i}``, ``active_units_l{i}``, ``latent_dims_l{i}`` for
  hierarchical models.
* VQ-VAE: two rows, ``rate_kind="fixed"`` and ``"prior"``, each with its rate, the shared
  distortion, ``nll_nats`` = rate + distortion (a real two-part code length with a discrete
  likelihood), ``perplexity`` and ``codebook_usage``.
* With the ``gaussian`` likelihood (a density, not a code length), ``bits_per_dim`` and
  ``elbo_bits_per_dim`` are left out; nats are still reported.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vlae_models.core import (
    IW_ROWS,
    LatentModel,
    ModelError,
    as_nchw,
    check_output,
    compile_networks,
)
from vlae_models.files import atomic_write
from vlae_models.units import LN2

AU_THRESHOLD = 0.01
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def evaluate(
    model: LatentModel,
    data: Tensor,
    *,
    iw_samples: int = 0,
    dataset: str | None = None,
    split: str | None = None,
    method: str | None = None,
    beta: float | None = None,
    seed: int = 0,
    batch_size: int = 256,
    max_iw_rows: int = IW_ROWS,
    mutual_info: bool = True,
    mi_max_examples: int = 10_000,
    out_dir: Path | str | None = None,
    progress: bool = False,
    compile: bool = False,
    dtype: str = "fp32",
) -> list[dict[str, Any]]:
    """Evaluate ``model`` on uint8 pixels (N, C, H, W) and return result rows (see module doc).

    ``iw_samples`` = k > 0 adds the IWAE estimate (continuous latents only); ``max_iw_rows``
    bounds how many decoder rows one vectorised call holds. ``seed`` fixes every random draw
    without touching the caller's RNG. With ``out_dir``, reconstruction and sample grids are
    saved as PNG (samples are the likelihood's mean). ``compile=True`` runs the model's
    deterministic networks through ``torch.compile`` (:func:`~vlae_models.core.compile_networks`):
    the same numbers to float tolerance, several times faster for the IWAE pass on a CPU; the
    rows then say ``compiled=True``. ``dtype="bf16"`` or ``"fp16"`` runs the networks under
    autocast (meant for GPUs); the likelihoods, the posterior and prior densities and the
    log-sum-exp stay in float32 (they upcast), and the rows record the dtype.
    """
    pixels = as_nchw(data, "data")
    model.eval()
    compiled = bool(compile_networks(model)) if compile else False
    device = next(model.parameters()).device
    n, c, h, w = pixels.shape
    fork = [device.index or 0] if device.type == "cuda" else []
    if dtype not in AUTOCAST:
        raise ModelError(f"dtype must be one of {sorted(AUTOCAST)}, got {dtype!r}")
    cast = torch.autocast(device.type, dtype=AUTOCAST[dtype], enabled=AUTOCAST[dtype] is not None)
    with torch.random.fork_rng(devices=fork), torch.no_grad(), cast:
        torch.manual_seed(seed)
        stats = _pass(model, pixels, batch_size, device, mutual_info)
        iwae = None
        if iw_samples > 0 and model.has_continuous_latents and model.has_latents:
            iwae = _iwae(model, pixels, iw_samples, max_iw_rows, device, progress)
        mi = mi_upper = None
        if mutual_info and stats.get("top") is not None:
            mi, mi_upper = mutual_information_bounds(*stats["top"], max_examples=mi_max_examples)
        if out_dir is not None:
            save_grids(model, pixels, Path(out_dir), tag="_".join(filter(None, [dataset, split])))

    common: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "method": method or getattr(model, "registry_name", type(model).__name__),
        "seed": seed,
        "image": "__all__",
        "n_examples": n,
        "distortion_nats": stats["distortion"],
        "config": json.dumps(dataclasses.asdict(model.config), sort_keys=True),
        "compiled": compiled or None,
        "dtype": dtype if dtype != "fp32" else None,
    }
    if beta is not None:
        common.update(param="beta", value=float(beta))
    common = {k: v for k, v in common.items() if v is not None}
    discrete = bool(getattr(model.likelihood, "discrete", True))
    dims = c * h * w

    def bits(nats: float) -> dict[str, float]:
        return {"bits_per_dim": nats / (LN2 * dims)} if discrete else {}

    if not model.has_continuous_latents:
        rows = []
        kinds = [k for k in ("fixed", "prior") if f"rate_{k}" in stats]
        for kind in kinds or [model.rate_kind]:
            rate = stats.get(f"rate_{kind}", stats["rate"])
            nll = rate + stats["distortion"]
            rows.append(
                {
                    **common, "rate_kind": kind, "estimator": "elbo", "rate_nats": rate,
                    "bpp": rate / (LN2 * h * w), "nll_nats": nll, **bits(nll),
                    "perplexity": stats.get("perplexity"), "codebook_usage": stats.get("usage"),
                }
            )  # fmt: skip
        rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
        return rows

    rate, neg_elbo = stats["rate"], stats["rate"] + stats["distortion"]
    row: dict[str, Any] = {
        **common,
        "rate_kind": "kl",
        "estimator": "iwae" if iwae is not None else "elbo" if model.has_latents else "exact",
        "rate_nats": rate,
        "kl_nats": rate,
        "bpp": rate / (LN2 * h * w),
        "neg_elbo_nats": neg_elbo,
        "nll_nats": -iwae if iwae is not None else neg_elbo,
    }
    if iwae is not None:
        row["iw_samples"] = iw_samples
    row.update(bits(row["nll_nats"]))
    if discrete:
        row["elbo_bits_per_dim"] = neg_elbo / (LN2 * dims)
    levels = stats.get("levels", [])
    if levels:
        row["active_units"] = sum(lv["active_units"] for lv in levels)
        row["latent_dims"] = sum(lv["latent_dims"] for lv in levels)
    if len(levels) == 1:
        if mi is not None:
            row["mutual_info_nats"] = mi
            row["mutual_info_upper_nats"] = mi_upper
            row["marginal_kl_nats"] = rate - mi  # KL(q(z) || p(z)) by ELBO surgery
    elif levels:
        for i, lv in enumerate(levels):
            row[f"kl_nats_l{i}"] = lv["kl"]
            row[f"active_units_l{i}"] = lv["active_units"]
            row[f"latent_dims_l{i}"] = lv["latent_dims"]
        if mi is not None:
            row["mutual_info_nats_l0"] = mi
            row["mutual_info_upper_nats_l0"] = mi_upper
    return [row]


def _pass(
    model: LatentModel,
    pixels: Tensor,
    batch_size: int,
    device: torch.device,
    keep_top: bool,
):
    """One sweep over the split: sums of rate and distortion, code counts, posterior moments."""
    n = len(pixels)
    sums: dict[str, float] = {"rate": 0.0, "distortion": 0.0}
    moments = model.has_continuous_latents
    kl_levels: Tensor | None = None
    mom_sum: list[Tensor] = []
    mom_sq: list[Tensor] = []
    top_mean, top_std = [], []
    counts: Tensor | None = None
    for start in range(0, n, batch_size):
        raw = pixels[start : start + batch_size].to(device)
        x = model.prepare(raw)
        out = check_output(model(x), model, len(x))
        sums["rate"] += float(out.rate.double().sum())
        sums["distortion"] += float(out.distortion.double().sum())
        if "kl_levels" in out.extras:
            part = out.extras["kl_levels"].double().sum(0).cpu()
            kl_levels = part if kl_levels is None else kl_levels + part
        for key in ("rate_fixed", "rate_prior"):
            if key in out.extras:
                sums[key] = sums.get(key, 0.0) + float(out.extras[key].double().sum())
        if "indices" in out.extras:
            k = int(getattr(model.config, "num_codes", 0))
            part = torch.bincount(out.extras["indices"].flatten().cpu(), minlength=k)
            counts = part if counts is None else counts + part
        if moments:
            try:
                per_level = model.posterior_moments(x)
            except ModelError:  # a model without a Gaussian posterior: no AU, no MI
                moments, per_level = False, []
            for i, (mean, std) in enumerate(per_level):
                mean = mean.double().cpu()
                if i == len(mom_sum):
                    mom_sum.append(torch.zeros(mean.shape[1], dtype=torch.float64))
                    mom_sq.append(torch.zeros(mean.shape[1], dtype=torch.float64))
                mom_sum[i] += mean.sum(0)
                mom_sq[i] += (mean**2).sum(0)
                if i == 0 and keep_top:
                    top_mean.append(mean)
                    top_std.append(std.double().cpu())
    stats: dict[str, Any] = {k: v / n for k, v in sums.items()}
    if counts is not None:
        p = counts.double() / counts.sum()
        nz = p[p > 0]
        stats["perplexity"] = float(torch.exp(-(nz * nz.log()).sum()))
        stats["usage"] = float((counts > 0).double().mean())
    if moments:
        levels = []
        for i, (s, sq) in enumerate(zip(mom_sum, mom_sq, strict=True)):
            var = sq / n - (s / n) ** 2
            kl = float(kl_levels[i] / n) if kl_levels is not None else stats["rate"]
            levels.append(
                {"active_units": int((var > AU_THRESHOLD).sum()), "latent_dims": len(s), "kl": kl}
            )
        stats["levels"] = levels
        stats["top"] = (torch.cat(top_mean), torch.cat(top_std)) if top_mean else None
    return stats


def _iwae(
    model: LatentModel, pixels: Tensor, k: int, max_rows: int, device: torch.device, progress: bool
) -> float:
    """Mean IWAE log-likelihood (nats per image) with k samples.

    Each call holds at least 8 images (or max_rows / k when that is more); for large k the
    samples are then split into chunks of about max_rows / 8 inside ``log_likelihood``.
    """
    per_call = max(8, max_rows // k)
    total = 0.0
    starts = range(0, len(pixels), per_call)
    for start in tqdm(starts, desc=f"IWAE k={k}", disable=not progress, dynamic_ncols=True):
        x = model.prepare(pixels[start : start + per_call].to(device))
        total += float(model.log_likelihood(x, k, max_rows=max_rows).double().sum())
    return total / len(pixels)


def mutual_information(
    mean: Tensor, std: Tensor, *, max_examples: int = 10_000, chunk: int = 512
) -> float:
    """I(x; z) by ELBO surgery: the lower end of :func:`mutual_information_bounds`."""
    return mutual_information_bounds(mean, std, max_examples=max_examples, chunk=chunk)[0]


def mutual_information_bounds(
    mean: Tensor, std: Tensor, *, max_examples: int = 10_000, chunk: int = 512
) -> tuple[float, float]:
    """Lower and upper estimates of I(x; z) for diagonal-Gaussian posteriors
    q(z|x_n) = N(mean_n, std_n^2) of N images drawn from the data.

    One z_m ~ q(z|x_m) per image; the estimate is mean_m [log q(z_m|x_m) - log q^(z_m)] with
    the aggregate posterior q(z) estimated from the N images two ways:

    * lower: q^(z) = mean_n q(z|x_n), the m-th image included (Hoffman & Johnson 2016's ELBO
      surgery). The terms are at most log N, so it saturates there: it is a lower bound on
      I (the InfoNCE bound with N samples; Poole et al. 2019).
    * upper: q^(z_m) = mean_{n != m} q(z_m|x_n), leave one out. Given z_m, the other images are
      independent draws, so E q^ = q and by Jensen the estimate is biased *up*: an upper
      bound on I without a log N ceiling (Poole et al. 2019). I <= E KL(q(z|x) || p(z))
      holds besides, so min(upper, KL) is the tighter upper end.

    The N x N matrix of log-densities is built in float64 row chunks from matrix products (no
    Python loop over images). Uses the global RNG; :func:`evaluate` seeds it.
    """
    mean, std = mean.double(), std.double()
    if len(mean) > max_examples:
        keep = torch.randperm(len(mean))[:max_examples]
        mean, std = mean[keep], std[keep]
    n, d = mean.shape
    z = mean + std * torch.randn_like(std)
    log_2pi = math.log(2.0 * math.pi)
    log_own = (-0.5 * (((z - mean) / std) ** 2 + log_2pi) - std.log()).sum(1)
    inv_var = std.pow(-2)
    lin = mean * inv_var
    const = (mean**2 * inv_var).sum(1) + 2.0 * std.log().sum(1) + d * log_2pi  # (N,)
    log_agg = torch.empty(n, dtype=torch.float64)
    log_loo = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, chunk):
        zc = z[start : start + chunk]
        log_q = -0.5 * ((zc**2) @ inv_var.t() - 2.0 * zc @ lin.t() + const)  # (chunk, N)
        log_agg[start : start + chunk] = torch.logsumexp(log_q, dim=1) - math.log(n)
        rows = torch.arange(len(zc))
        log_q[rows, start + rows] = -math.inf
        log_loo[start : start + chunk] = torch.logsumexp(log_q, dim=1) - math.log(max(n - 1, 1))
    upper = float((log_own - log_loo).mean()) if n > 1 else math.nan  # one image: no others
    return float((log_own - log_agg).mean()), upper


def save_grids(
    model: LatentModel, pixels: Tensor, out_dir: Path, tag: str = "", n: int = 32
) -> list[Path]:
    """Save ``recon_<tag>.png`` (rows of originals above their reconstructions) and
    ``samples_<tag>.png`` (64 prior samples, the likelihood's mean). The originals are spread
    evenly over ``pixels``, since a split may be sorted (binarized MNIST's test set is)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    suffix = f"_{tag}" if tag else ""
    per_row = min(8, n, len(pixels))
    n = min(n, len(pixels)) // per_row * per_row
    raw = pixels[torch.linspace(0, len(pixels) - 1, n).round().long()].to(device)
    x = model.prepare(raw)
    recon = model.reconstruct(x).float().cpu()
    shown = x.float().cpu()
    rows = []
    for i in range(0, n, per_row):
        rows += [shown[i : i + per_row], recon[i : i + per_row]]
    recon_path = out_dir / f"recon{suffix}.png"
    _save_grid(torch.cat(rows), recon_path, nrow=per_row)
    sample_path = out_dir / f"samples{suffix}.png"
    _save_grid(model.sample(64).float().cpu(), sample_path, nrow=8)
    written = [recon_path, sample_path]
    if getattr(model, "autoregressive", False) and model.has_latents:
        written.append(out_dir / f"draws{suffix}.png")
        _save_grid(decoder_draws(model, x[::per_row]), written[-1], nrow=8)
    return written


def _save_grid(images: Tensor, path: Path, nrow: int) -> None:
    from torchvision.utils import save_image

    atomic_write(path, lambda p: save_image(images, p, nrow=nrow, pad_value=0.5, format="png"))


@torch.no_grad()
def decoder_draws(model: LatentModel, x: Tensor, draws: int = 7) -> Tensor:
    """What z keeps: for each image, the input followed by ``draws`` images drawn from
    p(x | z) for one z (the posterior mean), shape (B * (draws + 1), C, H, W).

    Features that agree across a row are carried by z; features that vary are left to the
    decoder (Chen et al. 2017, Fig. 1a)."""
    drawn = model.reconstruct(x.repeat_interleave(draws, dim=0), mode="sample")
    rows = torch.cat([x.unsqueeze(1), drawn.view(len(x), draws, *x.shape[1:])], dim=1)
    return rows.flatten(0, 1).float().cpu()
