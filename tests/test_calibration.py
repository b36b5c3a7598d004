"""A model's codec steps: measured on training images when training ends (or by `vlae-bench
calibrate` for older checkpoints) and kept with its weights, so its streams carry none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, run_cli

from baselines import container
from baselines.method import plan
from benchmarks.datasets import load_items
from benchmarks.runs.model_runs import load_pixels
from vlae_models import checkpoint, zoo
from vlae_models.entropy import NOISE_STEP
from vlae_models.files import atomic_write
from vlae_models.train import TrainConfig, train


@pytest.fixture(scope="module")
def trained(binarized_mnist_dir: Path, tmp_path_factory) -> Path:
    pixels = load_pixels("binarized-mnist", "train", binarized_mnist_dir.parent, limit=128)
    torch.manual_seed(0)
    config = TrainConfig(steps=100, batch_size=32, beta=0.05, progress=False)
    out = tmp_path_factory.mktemp("beta-vae")
    return train("beta-vae", pixels, config=config, out_dir=out,
                 model_config=dict(latent_dim=6, width=8))  # fmt: skip


def _without_steps(path: Path, to: Path) -> Path:
    """The checkpoint as a version before calibration existed wrote it."""
    tensors, meta = checkpoint.read(path)
    kept = {k: v for k, v in tensors.items() if not k.endswith("latent_steps")}
    meta.pop("calibration")
    atomic_write(to, checkpoint._serialize(kept, meta))
    return to


def _stream(ref: str, image) -> tuple[object, container.Stream]:
    (setting,), _ = plan([ref], None)
    method = setting.build()
    method.setup("cpu")
    data = method.encode(image)
    assert (method.decode(data) == method.decode(data)).all()
    return method, container.unpack(data, method.identity)


def test_training_ends_by_calibrating_the_codec(trained, binarized_mnist_dir):
    model, meta = checkpoint.load(trained)
    assert meta["calibration"] == {"images": 128, "source": "the first 128 training images"}
    pixels = load_pixels("binarized-mnist", "train", binarized_mnist_dir.parent, limit=128)
    with torch.no_grad():
        target = NOISE_STEP * model.encode(model.prepare(pixels))[1].median(0).values
    # on the 4-bit half-octave grid: within a quarter octave of the target inside it, at its
    # top (2^1.5) above it
    steps, inside = model.calibrated_steps, target < 2**1.5
    assert inside.any() and (torch.log2(steps / target)[inside].abs() <= 0.25 + 1e-5).all()
    assert (steps[~inside] == 2**1.5).all()
    image = load_items("binarized-mnist", data_dir=binarized_mnist_dir.parent, limit=1)[0]
    _, stream = _stream(f"model:{trained}", image.pixels)
    assert len(stream.strings) == 1


def test_an_older_checkpoint_sends_its_steps_until_calibrated(
    trained, binarized_mnist_dir, monkeypatch, capsys, tmp_path
):
    old = _without_steps(trained, tmp_path / "old.safetensors")
    model, _ = checkpoint.load(old)  # loads: the steps are optional state
    assert model.calibrated_steps is None
    image = load_items("binarized-mnist", data_dir=binarized_mnist_dir.parent, limit=1)[0]
    before, stream = _stream(f"model:{old}", image.pixels)
    assert len(stream.strings) == 2 and len(stream.strings[0]) == 6 // 2  # 4-bit codes
    root = str(binarized_mnist_dir.parent)
    code, out, err = run_cli(monkeypatch, capsys, "calibrate", str(old), "--dataset",
                             "binarized-mnist", "--limit", "64", "--data-dir", root)  # fmt: skip
    assert code == 0 and "64 images" in out, err
    after, stream = _stream(f"model:{old}", image.pixels)
    assert len(stream.strings) == 1
    assert checkpoint.read_meta(old)["calibration"]["images"] == 64
    # the steps are part of the weights' identity: the old stream is another codec's
    data = before.encode(image.pixels)
    with pytest.raises(container.StreamError, match="other weights"):
        after.decode(data)


def test_calibrating_on_the_test_split_is_refused(trained, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "calibrate", str(trained), "--dataset",
                           "binarized-mnist", "--split", "test")  # fmt: skip
    assert_one_line_error(code, err, "calibrate on training images")


def test_a_zoo_entry_records_its_calibration(trained, binarized_mnist_dir, monkeypatch, tmp_path):
    zoo.export(_without_steps(trained, tmp_path / "old.safetensors"), "tiny", provenance={},
               folder=tmp_path / "zoo")  # fmt: skip
    monkeypatch.setenv("VLAE_BENCH_ZOO", str(tmp_path / "zoo"))
    from benchmarks.runs.model_runs import calibrate_to

    calibrate_to("zoo:tiny", "binarized-mnist", limit=32, data_dir=binarized_mnist_dir.parent)
    entry = json.loads((tmp_path / "zoo" / "index.json").read_text())["tiny"]
    assert entry["bytes"] == (tmp_path / "zoo" / "tiny.safetensors").stat().st_size
    assert entry["calibration"]["images"] == 32
    assert checkpoint.load(zoo.resolve("zoo:tiny"))[0].calibrated_steps is not None
