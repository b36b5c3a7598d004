"""The one training loop for every model.

Objective per batch (sums over dimensions, means over the batch, as everywhere):

    loss = distortion + beta_t * max(rate, free_bits) + aux_loss

* ``beta_t`` ramps linearly from 0 to ``beta`` over ``warmup_steps`` (KL warm-up,
  Sønderby et al. 2016).
* ``free_bits`` (nats) floors the batch-mean total rate, as the VLAE authors' code does
  (Chen et al. 2017; Kingma et al. 2016 floor each group instead: ``free_bits_mode="level"``
  floors each level of a hierarchical VAE).
* With ``capacity_gamma > 0`` the rate term is instead ``gamma * |rate - C|`` with C rising
  linearly from 0 to ``capacity_max`` nats over ``capacity_steps`` (Burgess et al. 2018);
  beta, warm-up and free bits are then unused.
* ``aux_loss`` is what a model adds beside rate and distortion (VQ-VAE's commitment loss).

Each step is skipped (no update) if the loss or the gradient norm is not finite, or the
gradient norm exceeds ``skip_grad_norm``; more than ``max_consecutive_skips`` skips in a row
raise :class:`TrainingDivergedError` naming the step. Gradients are clipped to ``grad_clip``.
Polyak/EMA weights (``ema_decay``) are kept beside the raw weights and are what evaluation
uses. Data stay in memory as one uint8 tensor and are batched by index: epoch e uses the
permutation drawn from ``seed`` and e, so the data order at any step is known without state.

Checkpoints (``checkpoint.safetensors`` in ``out_dir``, see :mod:`vlae_models.checkpoint`)
hold weights, EMA weights, optimizer state, RNG state and the step. Calling :func:`train`
again on the same ``out_dir`` resumes from the last checkpoint; on CPU the continuation is
bit-identical to an uninterrupted run (same thread count assumed).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from vlae_models import checkpoint
from vlae_models.config import TrainConfig, validate
from vlae_models.core import LatentModel, ModelError, ModelOutput, as_nchw, build, check_output
from vlae_models.distributed import SINGLE, Group, join, noise_shard, rank_device
from vlae_models.evaluate import evaluate
from vlae_models.files import append_line, atomic_write

CHECKPOINT_NAME = "checkpoint.safetensors"
LOG_NAME = "train_log.jsonl"
CALIBRATION_IMAGES = 2000  # training images that set a codec's quantization steps at the end
# Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"steps", "epochs", "checkpoint_every", "log_every", "eval_every", "progress"}


class TrainingDivergedError(ModelError):
    """Too many consecutive steps had a non-finite loss or gradient."""


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA where there is one), or the device named; one that does not exist here
    is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelError(f"unknown device '{name}' (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device '{name}' requested but CUDA is not available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ModelError(f"device '{name}': there are {torch.cuda.device_count()} CUDA devices")
    return device


def total_steps(config: TrainConfig, n: int) -> int:
    if config.steps is not None:
        return config.steps
    per_epoch = max(1, n // min(config.batch_size, n))
    return max(1, math.ceil(config.epochs * per_epoch))


class EpochBatches:
    """Indices of the batch at any step: epoch e is a permutation seeded by (seed, e).

    Each epoch visits ``n // batch_size`` full batches (the remainder is dropped). The order is
    a pure function of (seed, step), which is what makes resumption exact.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, min(batch_size, n), seed
        self.per_epoch = max(1, n // self.batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> Tensor:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


class WeightEMA:
    """Polyak averaging of every floating-point tensor in the state dict.

    The decay at update t is ``min(decay, (1 + t) / (10 + t))`` (TensorFlow's
    ExponentialMovingAverage with num_updates), so short runs are not dominated by the
    initial weights. Integer buffers are copied.
    """

    def __init__(self, model: LatentModel, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: LatentModel, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach(), 1.0 - d)
            else:
                shadow.copy_(value)

    def averaged_model(self, model: LatentModel) -> LatentModel:
        """A copy of ``model`` holding the averaged weights, in eval mode."""
        twin = copy.deepcopy(model)
        twin.load_state_dict(self.shadow)
        return twin.eval()


def make_optimizer(model: LatentModel, config: TrainConfig) -> torch.optim.Optimizer:
    cls = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax, "adamw": torch.optim.AdamW}
    return cls[config.optimizer](model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def beta_at(config: TrainConfig, step: int) -> float:
    """KL warm-up: beta * min(1, (step + 1) / warmup_steps)."""
    if config.warmup_steps <= 0:
        return config.beta
    return config.beta * min(1.0, (step + 1) / config.warmup_steps)


def capacity_at(config: TrainConfig, step: int) -> float:
    """Burgess et al. 2018: the target KL C rises linearly to capacity_max."""
    if config.capacity_steps <= 0:
        return config.capacity_max
    return config.capacity_max * min(1.0, step / config.capacity_steps)


def free_bits_floor(config: TrainConfig, model: LatentModel) -> float:
    """The free-bits floor in nats: the run's setting, else the model's own default
    (``model.free_bits_nats``: 0.01 nats per dimension for the VLAE, 0 for the others)."""
    return model.free_bits_nats if config.free_bits is None else config.free_bits


def objective(
    out: ModelOutput,
    config: TrainConfig,
    step: int,
    free_bits: float | None = None,
    group: Group = SINGLE,
) -> tuple[Tensor, float]:
    """The training loss for one batch and the beta used (see the module docstring).

    ``free_bits`` is the resolved floor (``free_bits_floor``); None uses ``config.free_bits``.
    In a data-parallel step (``group``) the floor and the capacity target act on the mean rate
    of the global batch, while the loss stays this shard's, so that DDP's averaged gradient is
    the global batch's (:mod:`vlae_models.distributed`).
    """
    if free_bits is None:
        free_bits = config.free_bits or 0.0
    rate = out.rate.float().mean()
    if config.capacity_gamma > 0:
        gap = group.mean(rate) - capacity_at(config, step)
        rate_term = config.capacity_gamma * torch.sign(gap) * (rate - capacity_at(config, step))
        beta = float("nan")
    else:
        beta = beta_at(config, step)
        if free_bits <= 0:
            floored = rate
        elif config.free_bits_mode == "level" and "kl_levels" in out.extras:
            levels = out.extras["kl_levels"].float().mean(0)
            floored = _floor(levels, group.mean(levels), free_bits).sum()
        else:
            floored = _floor(rate, group.mean(rate), free_bits)
        rate_term = beta * floored
    loss = out.distortion.float().mean() + rate_term
    if "aux_loss" in out.extras:
        loss = loss + out.extras["aux_loss"].float().mean()
    return loss, beta


def _floor(local: Tensor, batch_mean: Tensor, floor: float) -> Tensor:
    """max(rate, floor) decided on the global batch's mean: the shard's rate where that mean
    is above the floor (the gradient flows), the constant floor where it is not."""
    return torch.where(batch_mean >= floor, local, torch.full_like(local, floor))


def data_fingerprint(pixels: Tensor) -> dict[str, Any]:
    digest = hashlib.sha256(pixels.contiguous().cpu().numpy().tobytes()).hexdigest()
    return {"shape": list(pixels.shape), "sha256": digest}


def random_crops(batch: Tensor, size: int, seed: int, step: int) -> Tensor:
    """A ``size`` x ``size`` crop of each image, placed by a generator seeded by (seed, step):
    the crops of any step are known without state, so resumption stays exact."""
    h, w = batch.shape[-2:]
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step + 1)
    tops = torch.randint(0, h - size + 1, (len(batch),), generator=gen).tolist()
    lefts = torch.randint(0, w - size + 1, (len(batch),), generator=gen).tolist()
    return torch.stack(
        [img[:, t : t + size, s : s + size] for img, t, s in zip(batch, tops, lefts, strict=True)]
    )


def _check_model_data(model: LatentModel, pixels: Tensor, crop: int | None = None) -> None:
    config = model.config
    c, h, w = pixels.shape[1:]
    want = (getattr(config, "in_channels", c), getattr(config, "image_size", h))
    if crop is not None:
        if crop > min(h, w) or (c, crop) != want:
            raise ModelError(
                f"crop={crop} of {c}x{h}x{w} data does not give the model's "
                f"{want[0]}x{want[1]}x{want[1]}; set crop to image_size and at most {min(h, w)}"
            )
    elif (c, h) != want or h != w:
        raise ModelError(
            f"data is {c}x{h}x{w} but the model expects {want[0]}x{want[1]}x{want[1]}; "
            "set in_channels / image_size in the model config, or --set crop=SIDE"
        )
    model.prepare(pixels.amax(dim=0, keepdim=True))  # raises if 8-bit data meet a binary likelihood


def _diff(stored: dict[str, Any], now: dict[str, Any], skip: set[str]) -> list[str]:
    keys = sorted((set(stored) | set(now)) - skip)
    return [
        f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in keys if stored.get(k) != now.get(k)
    ]


class _Window:
    """Means of the logged quantities over the steps since the last log line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def flush(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0
        return means


@dataclass
class TrainState:
    """What a checkpoint restores: the model, its optimizer and EMA, the step, skip counters."""

    model: LatentModel
    optimizer: torch.optim.Optimizer
    ema: WeightEMA | None
    step: int = 0
    skipped: int = 0
    consecutive: int = 0


@dataclass
class StepResult:
    loss: float
    rate: float
    distortion: float
    grad_norm: float
    beta: float
    skip_reason: str | None  # None when the update was applied


def training_step(
    state: TrainState,
    x: Tensor,
    config: TrainConfig,
    free_bits: float,
    bf16: bool = False,
    group: Group = SINGLE,
    net: torch.nn.Module | None = None,
) -> StepResult:
    """One optimisation step on the batch x; a non-finite or too-large step is skipped.

    Data-parallel: x is this rank's shard, ``net`` the DDP wrapper of ``state.model`` (which
    averages the gradients in ``backward``); the returned numbers are the global batch's.
    """
    model, optimizer = state.model, state.optimizer
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16), noise_shard(group):
        out = check_output((net or model)(x), model, len(x), finite=state.step == 0)
    loss, beta = objective(out, config, state.step, free_bits, group)
    optimizer.zero_grad(set_to_none=True)
    loss_value, grad_norm = float(group.mean(loss)), float("nan")
    if math.isfinite(loss_value):
        loss.backward()
        max_norm = config.grad_clip if config.grad_clip is not None else math.inf
        params = [p for p in model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    reason = None
    if not math.isfinite(loss_value):
        reason = f"loss {loss_value}"
    elif not math.isfinite(grad_norm) or (
        config.skip_grad_norm is not None and grad_norm > config.skip_grad_norm
    ):
        reason = f"grad norm {grad_norm}"
    if reason is None:
        optimizer.step()
        if state.ema is not None:
            state.ema.update(model, state.step)
        state.consecutive = 0
    else:
        optimizer.zero_grad(set_to_none=True)
        state.skipped += 1
        state.consecutive += 1
    state.step += 1
    return StepResult(
        loss_value, float(group.mean(out.rate.float().mean())),
        float(group.mean(out.distortion.float().mean())), grad_norm, beta, reason,
    )  # fmt: skip


class Checkpointer:
    """Saves and restores a :class:`TrainState` as ``checkpoint.safetensors`` in a run folder.

    Data-parallel, rank 0 writes and the others wait for it; every rank restores."""

    def __init__(
        self, out_dir: Path, config: TrainConfig, total: int, fingerprint: dict,
        group: Group = SINGLE,
    ) -> None:  # fmt: skip
        self.path = out_dir / CHECKPOINT_NAME
        self.config, self.total, self.fingerprint, self.group = config, total, fingerprint, group

    def save(self, state: TrainState) -> None:
        if self.group.is_main:
            self._write(state)
        self.group.barrier()

    def _write(self, state: TrainState) -> None:
        checkpoint.save(
            self.path, state.model, train_config=self.config, step=state.step,
            optimizer=state.optimizer,
            ema_state=state.ema.shadow if state.ema is not None else None, save_rng=True,
            extra={
                "skipped_steps": state.skipped, "consecutive_skips": state.consecutive,
                "total_steps": self.total, "data_fingerprint": self.fingerprint,
                "world_size": self.group.world,
                "shard_batch": self.config.batch_size // self.group.world,
            },
        )  # fmt: skip

    def restore(self, state: TrainState) -> bool:
        """Load the stored state into ``state`` if a checkpoint exists; True if it did."""
        if not self.path.exists():
            return False
        loaded = checkpoint.read(self.path)
        _check_resumable(self.path, loaded[1], state.model, self.config, self.fingerprint)
        meta, ema_state = checkpoint.restore_training(
            self.path, state.model, state.optimizer, loaded
        )
        if state.ema is not None and ema_state is not None:
            device = next(state.model.parameters()).device
            state.ema.shadow = {k: v.to(device) for k, v in ema_state.items()}
        state.step, state.skipped = int(meta["step"]), int(meta.get("skipped_steps", 0))
        state.consecutive = int(meta.get("consecutive_skips", 0))
        return True


class TrainLog:
    """``train_log.jsonl``: one JSON record per log line, means over the steps since the last.
    Only one process writes it (``enabled``: rank 0 of a data-parallel run)."""

    def __init__(self, out_dir: Path, enabled: bool = True) -> None:
        self.path = out_dir / LOG_NAME
        self.window = _Window()
        self.enabled = enabled

    def start(self, step: int) -> None:
        """A fresh run clears the log; a resumed one drops lines written after its checkpoint,
        and a line a killed run left half-written."""
        if not self.enabled:
            return
        if step == 0:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            keep = [line for line in self.path.read_text().splitlines() if _step(line) <= step]
            atomic_write(self.path, "".join(line + "\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            append_line(self.path, json.dumps(record))


def _step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf  # torn by a kill: dropped


def _diverged(step: int, state: TrainState, reason: str, config: TrainConfig, ckpt: Path):
    last = f"last checkpoint {ckpt}" if ckpt.exists() else "no checkpoint written"
    return TrainingDivergedError(
        f"training diverged at step {step}: {state.consecutive} consecutive updates skipped "
        f"(latest: {reason}; max_consecutive_skips={config.max_consecutive_skips}); {last}. "
        "Try a lower lr, grad_clip, warmup_steps or bf16=False"
    )


def train(
    model_name_or_model: str | LatentModel,
    train_data: Tensor,
    *,
    config: TrainConfig,
    out_dir: Path | str,
    eval_data: Tensor | None = None,
    model_config: dict[str, Any] | None = None,
    resume: bool = True,
) -> Path:
    """Train a model on uint8 pixels (N, C, H, W) and return the path of its checkpoint.

    ``model_name_or_model`` is a registry name (built with ``model_config`` overrides, after
    seeding with ``config.seed``) or a model instance. If ``out_dir`` already holds a
    checkpoint and ``resume`` is true, training continues from it; settings other than
    steps/epochs and the logging cadence must match the stored ones.
    ``eval_data`` (uint8) is evaluated with the EMA weights every ``eval_every`` steps and at
    the end; the numbers go to ``train_log.jsonl`` beside the checkpoint.
    """
    validate(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pixels = as_nchw(train_data, "train_data")
    eval_pixels = as_nchw(eval_data, "eval_data") if eval_data is not None else None
    group, created_group = join(resolve_device(config.device))
    device = rank_device(resolve_device(config.device), group)
    use_bf16 = config.bf16 and device.type == "cuda"
    if config.bf16 and not use_bf16:
        warnings.warn("bf16 autocast is only used on CUDA; training in float32", stacklevel=2)

    torch.manual_seed(config.seed)
    if isinstance(model_name_or_model, str):
        model = build(model_name_or_model, **(model_config or {}))
    else:
        if model_config:
            raise ModelError("model_config applies only when the model is given by name")
        model = model_name_or_model
    _check_model_data(model, pixels, config.crop)
    model.to(device).train()
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    state = TrainState(model, make_optimizer(model, config), ema)
    total = total_steps(config, len(pixels))
    saver = Checkpointer(out_dir, config, total, data_fingerprint(pixels), group)
    if not (resume and saver.restore(state)):
        torch.manual_seed(config.seed)  # the loop's own randomness: z samples, code restarts
    log = TrainLog(out_dir, enabled=group.is_main)
    log.start(state.step)
    net = data_parallel(model, group, device)
    if group.parallel and group.is_main:
        print(
            f"data-parallel: {group.world} processes x {config.batch_size // group.world} "
            f"images = global batch {config.batch_size} ({torch.distributed.get_backend()})",
            file=sys.stderr,
        )

    pixels = pixels.to(device)
    batches = EpochBatches(len(pixels), config.batch_size, config.seed)
    free_bits = free_bits_floor(config, model)
    name = getattr(model, "registry_name", type(model).__name__)
    bar = tqdm(
        total=total, initial=state.step, desc=f"train {name}",
        disable=not (config.progress and group.is_main), dynamic_ncols=True,
    )  # fmt: skip
    try:
        while state.step < total:
            batch = pixels[batches.indices(state.step).to(device)]
            if config.crop is not None:
                batch = random_crops(batch, config.crop, config.seed, state.step)
            x = model.prepare(group.shard(batch))
            result = training_step(state, x, config, free_bits, use_bf16, group, net)
            done = state.step
            if result.skip_reason is None:
                log.window.add(
                    loss=result.loss, rate=result.rate, distortion=result.distortion,
                    grad_norm=result.grad_norm,
                )  # fmt: skip
            else:
                bar.write(f"step {done}: update skipped ({result.skip_reason})")
                if state.consecutive > config.max_consecutive_skips:
                    raise _diverged(done, state, result.skip_reason, config, saver.path)
            if done % config.log_every == 0 or done == total:
                means = log.window.flush()
                record = {"step": done, "skipped": state.skipped, **means}
                if math.isfinite(result.beta):  # NaN under the capacity objective
                    record["beta"] = result.beta
                log.write(record)
                if means:
                    bar.set_postfix(
                        loss=f"{means['loss']:.2f}", rate=f"{means['rate']:.2f}",
                        distortion=f"{means['distortion']:.2f}",
                    )  # fmt: skip
            if eval_pixels is not None and config.eval_every and done % config.eval_every == 0:
                log.write({"step": done, "eval": _quick_eval(model, ema, eval_pixels, group)})
            if done % config.checkpoint_every == 0 or done == total:
                saver.save(state)
            bar.update(1)
    finally:
        bar.close()
    if eval_pixels is not None:
        log.write({"step": total, "eval": _quick_eval(model, ema, eval_pixels, group)})
    if group.is_main and hasattr(model, "calibrate"):
        few = pixels[:CALIBRATION_IMAGES].cpu()
        if config.crop is not None:
            few = random_crops(few, config.crop, config.seed, 0)
        checkpoint.calibrate(saver.path, few, f"the first {len(few)} training images")
    group.barrier()
    if created_group:
        torch.distributed.destroy_process_group()
    return saver.path


def data_parallel(model: LatentModel, group: Group, device: torch.device) -> torch.nn.Module:
    """The module a training step calls: ``model`` itself, or its DDP wrapper across ranks
    (which also broadcasts rank 0's weights at the start, so every rank begins the same)."""
    if not group.parallel:
        return model

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _check_resumable(
    path: Path, meta: dict[str, Any], model: LatentModel, config: TrainConfig, fingerprint: dict
) -> None:
    if meta.get("model") != getattr(model, "registry_name", None):
        raise ModelError(f"cannot resume from {path}: it holds model '{meta.get('model')}'")
    stored_cfg = meta.get("train_config") or {}
    changed = _diff(stored_cfg, dataclasses.asdict(config), _RESUMABLE_CHANGES | {"device"})
    changed += _diff(meta.get("model_config") or {}, dataclasses.asdict(model.config), set())
    if changed:
        raise ModelError(
            f"cannot resume from {path}: settings differ from the stored run "
            f"({'; '.join(changed)}); use another output folder or the stored settings"
        )
    if meta.get("data_fingerprint") not in (None, fingerprint):
        raise ModelError(f"cannot resume from {path}: it was trained on different data")


def _quick_eval(
    model: LatentModel, ema: WeightEMA | None, pixels: Tensor, group: Group = SINGLE
) -> dict[str, float]:
    """Negative ELBO and its parts on ``pixels`` with the EMA weights (no IWAE, no MI).

    Data-parallel, each rank evaluates every W-th image and the means are all-reduced,
    weighted by the images each rank saw."""

    target = ema.averaged_model(model) if ema is not None else copy.deepcopy(model).eval()
    part = pixels[group.rank :: group.world]
    rows = evaluate(target, part, iw_samples=0, mutual_info=False)
    keep = ("rate_kind", "rate_nats", "distortion_nats", "nll_nats", "bits_per_dim")
    means = {r["rate_kind"] + ":" + k: r[k] for r in rows for k in keep[1:] if k in r}
    if not group.parallel:
        return means
    sums = group.sum(torch.tensor([len(part), *(v * len(part) for v in means.values())],
                                  dtype=torch.float64))  # fmt: skip
    return {k: float(v / sums[0]) for k, v in zip(means, sums[1:], strict=True)}
