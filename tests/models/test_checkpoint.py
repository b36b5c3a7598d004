"""Checkpoints: exact round trips, and one-line errors for every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vlae_models import checkpoint
from vlae_models.core import ModelError, build
from vlae_models.vae import BetaVAEConfig

SMALL = {
    "beta-vae": {"latent_dim": 4, "width": 16},
    "vq-vae": {"num_codes": 8, "width": 16, "embedding_dim": 4},
    "hvae": {"levels": 2, "width": 16, "z_channels": 2},
}


def _x(n: int = 3) -> torch.Tensor:
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(5)) > 0.5).float()


def _outputs(model, x):
    torch.manual_seed(123)
    out = model(x)
    result = [out.rate, out.distortion, model.reconstruct(x)]
    if model.has_continuous_latents:
        torch.manual_seed(7)
        result.append(model.log_importance_weights(x, 4))
    return result


@pytest.mark.parametrize("name", sorted(SMALL))
def test_save_load_gives_identical_outputs(name: str, tmp_path: Path):
    torch.manual_seed(0)
    model = build(name, likelihood="logistic-mixture", n_mix=2, **SMALL[name])
    model.train()(_x())  # VQ: initialise and move the codebook once
    model.eval()
    path = checkpoint.save(tmp_path / "m.safetensors", model, step=11)
    loaded, meta = checkpoint.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert meta["step"] == 11 and meta["model"] == name and meta["weights"] == "raw"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = _x()
    with torch.no_grad():
        for a, b in zip(_outputs(model, x), _outputs(loaded, x), strict=True):
            assert torch.equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary files left


def test_ema_weights_are_loaded_by_default(tmp_path: Path):
    model = build("beta-vae", **SMALL["beta-vae"])
    ema = {k: v + 1.0 for k, v in model.state_dict().items()}
    path = checkpoint.save(tmp_path / "m.safetensors", model, ema_state=ema)
    averaged, meta = checkpoint.load(path)
    raw, _ = checkpoint.load(path, weights="raw")
    assert meta["weights"] == "ema"
    key = "decoder_in.weight"
    assert torch.equal(averaged.state_dict()[key], ema[key])
    assert torch.equal(raw.state_dict()[key], model.state_dict()[key])


def _saved(tmp_path: Path) -> Path:
    return checkpoint.save(tmp_path / "m.safetensors", build("beta-vae", **SMALL["beta-vae"]))


def _error(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file(tmp_path: Path):
    assert "no such file" in _error(tmp_path / "nothing.safetensors")


def test_truncated_file(tmp_path: Path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(path)
    path.write_bytes(data[:5])
    assert "truncated" in _error(path)


def test_corrupt_tensor_bytes_fail_the_checksum(tmp_path: Path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the tensor data: safetensors itself would not notice
    path.write_bytes(bytes(data))
    assert "corrupt" in _error(path)


def test_garbage_and_foreign_files(tmp_path: Path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + b"\x00" * 64)
    assert "not a vlae-bench checkpoint" in _error(path)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)  # a valid safetensors file, but not ours
    assert "not a vlae-bench checkpoint" in _error(foreign)
    pickle = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickle)
    assert "pickle" in _error(pickle)


def test_wrong_architecture(tmp_path: Path):
    model = build("beta-vae", latent_dim=4, width=16)
    model.config = BetaVAEConfig(latent_dim=8, width=16)  # metadata now disagrees with the weights
    path = checkpoint.save(tmp_path / "m.safetensors", model)
    message = _error(path)
    assert "do not fit the model architecture" in message and "shape mismatch" in message


def test_unknown_config_key_and_model(tmp_path: Path):
    path = _saved(tmp_path)
    tensors, meta = checkpoint.read(path)
    meta["model_config"]["depth"] = 3
    meta.pop("data_sha256")
    path.write_bytes(checkpoint._serialize(tensors, meta))
    assert "depth" in _error(path)
    meta["model_config"].pop("depth")
    meta["model"] = "no-such-model"
    path.write_bytes(checkpoint._serialize(tensors, meta))
    with pytest.raises(ModelError, match="unknown model"):
        checkpoint.load(path)


def test_metadata_is_plain_json(tmp_path: Path):
    path = _saved(tmp_path)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    meta = json.loads(header["__metadata__"]["vlae_bench"])
    assert meta["format"] == "vlae-bench-checkpoint" and "torch" in meta["versions"]
    assert meta["model_config"]["latent_dim"] == 4


def test_a_compact_checkpoint_resumes_training(tmp_path: Path, binarized_mnist_dir):
    """write_compact halves a training checkpoint (fp16 weights, bf16 optimizer moments,
    exact counters); expanded, it is a checkpoint that `train` resumes to the end."""
    from benchmarks.runs.model_runs import train_config, train_to

    sets = ["latent_dim=4", "width=16", "batch_size=16", "checkpoint_every=5", "progress=false",
            "optimizer=adamax"]  # fmt: skip
    run, data = tmp_path / "run", binarized_mnist_dir.parent
    over, config = train_config("beta-vae", sets, steps=5)
    full = train_to(run, "beta-vae", "binarized-mnist", model_config=over, config=config,
                    data_dir=data)  # fmt: skip
    compact = checkpoint.write_compact(full, tmp_path / "state.safetensors")
    assert compact.stat().st_size < 0.6 * full.stat().st_size
    tensors, meta = checkpoint.read(compact)
    assert meta["compact"] == checkpoint.COMPACT and meta["step"] == 5
    assert {v.dtype for k, v in tensors.items() if k.startswith("model/")} == {torch.float16}
    moments = [v for k, v in tensors.items() if k.startswith("optim/") and v.is_floating_point()
               and not k.endswith("/step")]  # fmt: skip
    assert moments and {v.dtype for v in moments} == {torch.bfloat16}
    original, _ = checkpoint.read(full)
    for key, value in tensors.items():
        if key.endswith("/step"):
            assert torch.equal(value, original[key])  # counters stay exact
    with pytest.raises(ModelError, match="not a compact checkpoint"):
        checkpoint.expand_compact(full, tmp_path / "x.safetensors")

    moved = tmp_path / "elsewhere"
    moved.mkdir()
    checkpoint.expand_compact(compact, moved / "checkpoint.safetensors")
    for name in ("run.json", "train_log.jsonl"):
        (moved / name).write_bytes((run / name).read_bytes())
    over, config = train_config("beta-vae", sets, steps=8)
    resumed = train_to(moved, "beta-vae", "binarized-mnist", model_config=over, config=config,
                       data_dir=data)  # fmt: skip
    assert checkpoint.read_meta(resumed)["step"] == 8
    weights, _ = checkpoint.read(resumed)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
