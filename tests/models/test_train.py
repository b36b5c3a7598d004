"""The training loop: exact resumption, the NaN guard, schedules, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vlae_models import checkpoint
from vlae_models.core import ModelError, ModelOutput, build
from vlae_models.train import (
    EpochBatches,
    TrainConfig,
    TrainingDivergedError,
    beta_at,
    capacity_at,
    objective,
    train,
)
from vlae_models.vae import BetaVAE, BetaVAEConfig

SMALL = {
    "beta-vae": {"latent_dim": 4, "width": 16},
    "vq-vae": {"num_codes": 8, "width": 16, "embedding_dim": 4},
    "hvae": {"levels": 2, "width": 16, "z_channels": 2},
    "hierarchical-vlae": {
        "width": 16,
        "z_channels": 2,
        "flow_hidden": 32,
        "pixelcnn_filters": 8,
        "pixelcnn_layers": 2,
        "pixelcnn_res_blocks": 1,
    },
    "vq-vae-ar": {"prior_filters": 8, "prior_layers": 2, "prior_res_blocks": 0},  # zoo VQ-VAE
}


def _binary(n: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 28, 28, generator=g) > 0.7).to(torch.uint8)


def _config(**kw) -> TrainConfig:
    base = {
        "batch_size": 16,
        "progress": False,
        "log_every": 1,
        "checkpoint_every": 100,
        "device": "cpu",
    }
    return TrainConfig(**{**base, **kw})


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_resume_continues_exactly(name: str, tmp_path: Path):
    """3 steps, stop, resume to 7 == 7 steps straight (crossing an epoch boundary)."""
    data = _binary()  # 3 batches per epoch
    cfg = {"steps": 7, "checkpoint_every": 3, "warmup_steps": 4, "seed": 3}
    full = train(
        name, data, config=_config(**cfg), out_dir=tmp_path / "full", model_config=SMALL[name]
    )
    part = tmp_path / "part"
    train(name, data, config=_config(**{**cfg, "steps": 3}), out_dir=part, model_config=SMALL[name])
    resumed = train(name, data, config=_config(**cfg), out_dir=part, model_config=SMALL[name])
    a, meta_a = checkpoint.read(full)
    b, meta_b = checkpoint.read(resumed)
    assert meta_a["step"] == meta_b["step"] == 7
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _log(tmp_path / "full") == _log(part)


def test_interrupted_run_resumes_from_last_checkpoint(tmp_path: Path):
    """A run killed after its step-4 checkpoint picks up there and matches a straight run."""
    data = _binary()
    cfg = _config(steps=6, checkpoint_every=2)

    class Boom(BetaVAE):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            if Boom.calls == 6:  # during step 6, after the checkpoint of step 4
                raise KeyboardInterrupt
            return super().forward(x)

    torch.manual_seed(cfg.seed)
    with pytest.raises(KeyboardInterrupt):
        train(Boom(BetaVAEConfig(**SMALL["beta-vae"])), data, config=cfg, out_dir=tmp_path / "b")
    assert checkpoint.read(tmp_path / "b" / "checkpoint.safetensors")[1]["step"] == 4
    with (tmp_path / "b" / "train_log.jsonl").open("a") as log:
        log.write('{"step": 5, "lo')  # a line a kill -9 left half-written
    resumed = train(
        "beta-vae", data, config=cfg, out_dir=tmp_path / "b", model_config=SMALL["beta-vae"]
    )
    straight = train(
        "beta-vae", data, config=cfg, out_dir=tmp_path / "a", model_config=SMALL["beta-vae"]
    )
    a, b = checkpoint.read(straight)[0], checkpoint.read(resumed)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]


class NaNAt(BetaVAE):
    """A β-VAE whose distortion is NaN on chosen training forward calls (1-based)."""

    def __init__(self, bad: set[int] | None = None, after: int | None = None) -> None:
        super().__init__(BetaVAEConfig(**SMALL["beta-vae"]))
        self.bad, self.after, self.calls = bad or set(), after, 0

    def forward(self, x) -> ModelOutput:
        out = super().forward(x)
        self.calls += 1
        if self.calls in self.bad or (self.after is not None and self.calls > self.after):
            out.distortion = out.distortion * float("nan")
        return out


def test_nan_steps_are_skipped(tmp_path: Path):
    path = train(
        NaNAt(bad={2, 3}),
        _binary(),
        config=_config(steps=6, max_consecutive_skips=2),
        out_dir=tmp_path,
    )
    model, meta = checkpoint.load(path, weights="raw")
    assert meta["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    log = _log(tmp_path)
    assert [r["skipped"] for r in log] == [0, 1, 2, 2, 2, 2]


def test_too_many_nan_steps_fail_naming_the_step(tmp_path: Path):
    cfg = _config(steps=20, max_consecutive_skips=2, checkpoint_every=2)
    with pytest.raises(TrainingDivergedError) as info:
        train(NaNAt(after=3), _binary(), config=cfg, out_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ModelError) and "\n" not in message
    assert (
        "step 6" in message and "3 consecutive" in message and "checkpoint.safetensors" in message
    )


def test_non_finite_gradient_is_skipped_too(tmp_path: Path):
    model = build("beta-vae", **SMALL["beta-vae"])
    model.decoder_in.weight.register_hook(lambda g: g * float("nan"))
    with pytest.raises(TrainingDivergedError, match="step 2: .*grad norm nan"):
        train(model, _binary(), config=_config(steps=5, max_consecutive_skips=1), out_dir=tmp_path)


def test_resume_refuses_changed_settings_and_architecture(tmp_path: Path):
    data = _binary()
    train(
        "beta-vae", data, config=_config(steps=2), out_dir=tmp_path, model_config=SMALL["beta-vae"]
    )
    with pytest.raises(ModelError, match="lr: 0.002 -> 0.01"):
        train(
            "beta-vae",
            data,
            config=_config(steps=4, lr=0.01),
            out_dir=tmp_path,
            model_config=SMALL["beta-vae"],
        )
    with pytest.raises(ModelError, match="latent_dim: 4 -> 6"):
        train(
            "beta-vae",
            data,
            config=_config(steps=4),
            out_dir=tmp_path,
            model_config={**SMALL["beta-vae"], "latent_dim": 6},
        )
    with pytest.raises(ModelError, match="different data"):
        train(
            "beta-vae",
            1 - data,
            config=_config(steps=4),
            out_dir=tmp_path,
            model_config=SMALL["beta-vae"],
        )
    # resume=False starts afresh in the same folder
    train(
        "beta-vae",
        data,
        config=_config(steps=1, lr=0.01),
        out_dir=tmp_path,
        model_config=SMALL["beta-vae"],
        resume=False,
    )
    assert checkpoint.read(tmp_path / "checkpoint.safetensors")[1]["step"] == 1


def test_bad_inputs_are_model_errors(tmp_path: Path):
    eight_bit = (_binary() * 200).to(torch.uint8)
    with pytest.raises(ModelError, match="likelihood 'bernoulli' needs binary data"):
        train("beta-vae", eight_bit, config=_config(steps=1), out_dir=tmp_path)
    with pytest.raises(ModelError, match="exactly one of steps and epochs"):
        train("beta-vae", _binary(), config=_config(steps=1, epochs=1.0), out_dir=tmp_path)
    with pytest.raises(ModelError, match="uint8"):
        train("beta-vae", _binary().float(), config=_config(steps=1), out_dir=tmp_path)
    with pytest.raises(ModelError, match="expects 1x32x32"):
        train(
            "beta-vae",
            _binary(),
            config=_config(steps=1),
            out_dir=tmp_path,
            model_config={"image_size": 32},
        )


def test_epochs_and_data_order():
    batches = EpochBatches(10, 3, seed=1)
    assert batches.per_epoch == 3
    epoch0 = torch.cat([batches.indices(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9
    again = EpochBatches(10, 3, seed=1)
    assert torch.equal(again.indices(4), batches.indices(4))
    assert not torch.equal(batches.indices(0), batches.indices(3))  # a new permutation


def test_schedules_and_objective():
    cfg = TrainConfig(steps=1, beta=2.0, warmup_steps=4)
    assert [beta_at(cfg, s) for s in range(5)] == [0.5, 1.0, 1.5, 2.0, 2.0]
    cap = TrainConfig(steps=1, capacity_gamma=10.0, capacity_max=20.0, capacity_steps=100)
    assert (
        capacity_at(cap, 0) == 0.0
        and capacity_at(cap, 50) == 10.0
        and capacity_at(cap, 500) == 20.0
    )
    out = ModelOutput(
        distortion=torch.tensor([10.0, 20.0]),
        rate=torch.tensor([1.0, 3.0]),
        extras={
            "kl_levels": torch.tensor([[0.5, 0.5], [2.5, 0.5]]),
            "aux_loss": torch.tensor([1.0, 1.0]),
        },
    )
    loss, beta = objective(out, TrainConfig(steps=1, beta=2.0), 0)
    assert (float(loss), beta) == (15.0 + 2.0 * 2.0 + 1.0, 2.0)
    loss, _ = objective(out, TrainConfig(steps=1, beta=1.0, free_bits=5.0), 0)
    assert float(loss) == 15.0 + 5.0 + 1.0  # total rate 2 floored at 5
    loss, _ = objective(out, TrainConfig(steps=1, free_bits=1.0, free_bits_mode="level"), 0)
    assert float(loss) == 15.0 + (1.5 + 1.0) + 1.0  # level means (1.5, 0.5) floored at 1 each
    loss, beta = objective(out, cap, 50)
    assert float(loss) == 15.0 + 10.0 * abs(2.0 - 10.0) + 1.0
