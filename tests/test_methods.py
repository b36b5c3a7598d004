"""Every method through one path: codecs and model checkpoints in one command, on the same
items, into one table; the offline zoo; dataset item options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_one_line_error, run_cli

from baselines.codec import make_codec
from baselines.method import plan
from benchmarks.datasets import DatasetError, NamedImage, load_items
from benchmarks.datasets.items import DatasetView, mosaic
from benchmarks.evaluation.engine import evaluate_items
from vlae_models import checkpoint, zoo
from vlae_models.core import build
from vlae_models.train import TrainConfig, train


@pytest.fixture(scope="module")
def binary_test(binarized_mnist_dir: Path) -> list[NamedImage]:
    return load_items("binarized-mnist", split="test", data_dir=binarized_mnist_dir.parent,
                      limit=24)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_checkpoints(binarized_mnist_dir: Path, tmp_path_factory) -> dict[str, Path]:
    from benchmarks.runs.model_runs import load_pixels

    pixels = load_pixels("binarized-mnist", "train", binarized_mnist_dir.parent, limit=256)
    small = {"beta-vae": dict(latent_dim=4, width=16),
             "vq-vae": dict(num_codes=8, width=16, embedding_dim=4),
             "vlae": dict(z_dim=4, encoder_width=8, cond_width=8, flow_hidden=16,
                          pixelcnn_layers=2, pixelcnn_filters=8)}  # fmt: skip
    out = {}
    for name, config in small.items():
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(name)
        cfg = TrainConfig(steps=6, batch_size=32, progress=False, beta=0.5)
        out[name] = train(name, pixels, config=cfg, out_dir=folder, model_config=config)
    return out


def test_codecs_and_a_checkpoint_in_one_command(monkeypatch, capsys, binarized_mnist_dir,
                                                tiny_checkpoints, tmp_path):  # fmt: skip
    out = tmp_path / "run"
    args = ["codecs", "--dataset", "binarized-mnist", "--split", "test", "--limit", "24",
            "--data-dir", str(binarized_mnist_dir.parent), "-c", "gzip", "-c", "png",
            "-c", f"model:{tiny_checkpoints['beta-vae']}",
            "-c", f"model:{tiny_checkpoints['vq-vae']}",
            "--workers", "2", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    table = pd.read_parquet(out / "results.parquet")
    assert table.groupby("method")["image"].nunique().to_dict() == {
        "gzip": 24, "png": 24, "beta-vae": 24, "vq-vae": 24}  # fmt: skip
    lossless = table[table["method"].isin(["gzip", "png"])]
    assert (lossless["bit_error_rate"] == 0).all() and lossless["psnr"].isna().all()
    vae = table[table["method"] == "beta-vae"]
    assert set(vae["rate_kind"]) == {"coded", "kl"} and (vae["value"] == 0.5).all()  # its β
    assert np.allclose(vae["bits_per_dim"], vae["rate_nats"] / (np.log(2) * 784))
    kl = vae[vae["rate_kind"] == "kl"]
    assert np.allclose(kl["kl_nats"], kl["rate_nats"]) and (vae["bit_error_rate"] > 0).all()
    vq = table[table["method"] == "vq-vae"]
    assert set(vq["rate_kind"]) == {"coded", "fixed", "prior"}
    assert np.allclose(vq.loc[vq["rate_kind"] == "fixed", "rate_nats"], 49 * np.log(8))
    report = (out / "report.md").read_text()
    assert "KL bound" in report and "real coded bytes" in report and "bits per dimension" in report


def test_the_kl_rate_is_the_analytic_kl_of_each_image(tiny_checkpoints, binary_test,
                                                      binarized_mnist_dir):  # fmt: skip
    from baselines import container
    from benchmarks.runs.model_runs import load_pixels
    from vlae_models.entropy import NOISE_STEP, decompress_vectors

    (setting,), _ = plan([f"model:{tiny_checkpoints['beta-vae']}"], None)
    rows = [r for r in evaluate_items([setting], binary_test, {}) if r["rate_kind"] == "kl"]
    model, _ = checkpoint.load(tiny_checkpoints["beta-vae"])
    x = torch.from_numpy(np.stack([i.pixels for i in binary_test])).unsqueeze(1).float()
    with torch.no_grad():
        mean, std = model.encode(x)
    kl = (0.5 * (mean**2 + std**2 - 1) - std.log()).sum(1)  # Kingma & Welling 2014, App. B
    assert np.allclose([r["rate_nats"] for r in rows], kl.numpy(), rtol=1e-5)
    # the scored image is the decoder mean at the z its stream carries: within half a step of
    # the posterior mean, with the steps training calibrated on the half-octave grid around
    # sqrt(12) times each dimension's median posterior std over training images
    method = setting.build()
    method.setup("cpu")
    dim, steps = mean.shape[1], model.calibrated_steps
    train = load_pixels("binarized-mnist", "train", binarized_mnist_dir.parent, limit=256)
    with torch.no_grad():
        target = NOISE_STEP * model.encode(model.prepare(train))[1].median(0).values
    inside = (target > 2**-6) & (target < 2**1.5)
    assert (torch.log2(steps / target)[inside].abs() <= 0.25 + 1e-5).all()
    for item, row, mu in zip(binary_test, rows, mean, strict=True):
        stream = container.unpack(method.encode(item.pixels), method.identity)
        assert len(stream.strings) == 1  # the model's own steps: none in the stream
        z_hat = decompress_vectors(stream.strings, [1, dim], torch.device("cpu"), steps)[0]
        assert (torch.abs(z_hat - mu) <= steps / 2 + 1e-6).all()
        with torch.no_grad():
            recon = model.likelihood.mean(model.decode(z_hat[None]))[0, 0] > 0.5
        expected = (recon.numpy() != item.pixels.astype(bool)).mean()
        assert row["bit_error_rate"] == pytest.approx(expected)


def test_the_vlae_decodes_a_seeded_draw_from_p_x_given_z(tiny_checkpoints, binary_test):
    model, _ = checkpoint.load(tiny_checkpoints["vlae"])
    x = torch.from_numpy(np.stack([i.pixels for i in binary_test[:4]])).unsqueeze(1).float()
    coded = model.compress(x)
    torch.manual_seed(123)
    first = model.decompress(coded["strings"], coded["shape"])["x_hat"]
    second = model.decompress(coded["strings"], coded["shape"])["x_hat"]  # whatever RNG now
    other = model.decompress(coded["strings"], coded["shape"], seed=1)["x_hat"]
    assert torch.equal(first, second) and not torch.equal(first, other)
    # the draw is the PixelCNN's, given the decoded z (the flow inverted at the decoded eps)
    from vlae_models.entropy import decompress_vectors

    steps = model.calibrated_steps
    eps = decompress_vectors(coded["strings"], coded["shape"], torch.device("cpu"), steps)
    z = model.prior.inverse(eps)
    torch.manual_seed(0)
    drawn, _ = model.decode(z)
    assert torch.equal(first, model.decoder.output(drawn, model.condition(z), "sample"))


def test_greedy_vlae_decoding_takes_the_likelier_value_of_every_pixel(tiny_checkpoints,
                                                                     binary_test):  # fmt: skip
    model, _ = checkpoint.load(tiny_checkpoints["vlae"])
    x = torch.from_numpy(np.stack([i.pixels for i in binary_test[:4]])).unsqueeze(1).float()
    greedy = model.reconstruct(x, mode="mode")
    z, _ = model.encode(x)
    logits = model.decoder.params(greedy, model.condition(z))  # teacher-forced on its output
    assert torch.equal(greedy, (logits > 0).float())


def test_the_zoo_loads_by_name_with_the_same_numbers(monkeypatch, capsys, tiny_checkpoints,
                                                     binarized_mnist_dir, tmp_path):  # fmt: skip
    monkeypatch.setenv("VLAE_BENCH_ZOO", str(tmp_path / "zoo"))
    target = zoo.export(tiny_checkpoints["beta-vae"], "tiny-bvae", provenance={"command": "test"})
    zoo.set_reference("tiny-bvae", {"test/16/elbo": {"nll_nats": 2.0}, "test/8/elbo": {}})
    zoo.set_reference("tiny-bvae", {"test/16/elbo": {"nll_nats": 1.0}})  # replaces its own key
    index = json.loads((tmp_path / "zoo" / "index.json").read_text())
    entry = index["tiny-bvae"]
    assert entry["file"] == target.name and entry["model"] == "beta-vae"
    assert entry["reference"] == {"test/16/elbo": {"nll_nats": 1.0}, "test/8/elbo": {}}
    assert entry["provenance"]["command"] == "test"
    zoo.export(tiny_checkpoints["beta-vae"], "tiny-bvae", provenance={"command": "again"})
    assert "reference" not in zoo.index()["tiny-bvae"]  # new weights, no old numbers
    tensors, meta = checkpoint.read(target)
    assert all(k.startswith("model/") for k in tensors) and meta["optimizer"] is None
    common = ["--dataset", "binarized-mnist", "--data-dir", str(binarized_mnist_dir.parent),
              "--limit", "16", "--no-progress"]  # fmt: skip
    rows = {}
    for ref in (str(tiny_checkpoints["beta-vae"]), "zoo:tiny-bvae"):
        out = tmp_path / ref.replace(":", "_").replace("/", "_")
        code, _, err = run_cli(monkeypatch, capsys, "eval", ref, *common, "--out", str(out))
        assert code == 0, err
        rows[ref] = pd.read_parquet(out / "results.parquet").iloc[0]
    ours, shipped = rows.values()
    assert ours["neg_elbo_nats"] == pytest.approx(shipped["neg_elbo_nats"], rel=1e-6)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "zoo:nope", *common, "--out", str(tmp_path))
    assert_one_line_error(code, err, "unknown zoo model 'nope'", "tiny-bvae")


def test_a_model_without_a_latent_code_is_refused_before_anything_runs(monkeypatch, capsys,
                                                                       tmp_path):  # fmt: skip
    args = ["codecs", "--dataset", "binarized-mnist", "-c", "zoo:pixelcnn-binarized-mnist",
            "--out", str(tmp_path / "o")]  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, "no latent code", "vlae-bench eval")
    assert not (tmp_path / "o").exists()


def test_gray_images_stay_gray_through_every_image_codec():
    gray = (np.add.outer(np.arange(40), np.arange(48)) * 3 % 256).astype(np.uint8)
    for name in ("jpeg", "webp", "avif", "jxl", "jpeg2000", "png"):
        (coding,) = make_codec(name).code([gray])
        assert coding.reconstruction.shape == gray.shape, name
        assert coding.reconstruction.dtype == np.uint8


def test_dataset_options_patches_crop_and_mosaic(kodak_dir):
    assert DatasetView.parse("kodak:patches=64") == DatasetView("kodak", patches=64)
    assert DatasetView.parse("folder:/a:b:crop=32,mosaic") == DatasetView(
        "folder:/a:b", crop=32, mosaic=True)  # fmt: skip
    assert DatasetView.parse("folder:/data/x").name == "folder:/data/x"
    patches = load_items("kodak:patches=128", data_dir=kodak_dir.parent, limit=1)
    assert len(patches) == (512 // 128) * (768 // 128) and patches[1].name == "kodim01@0,128"
    whole = load_items("kodak", data_dir=kodak_dir.parent, limit=1)[0].pixels
    assert np.array_equal(patches[1].pixels, whole[:128, 128:256])
    crop = load_items("kodak:crop=100", data_dir=kodak_dir.parent, limit=1)[0].pixels
    assert np.array_equal(crop, whole[206:306, 334:434])
    digits = [NamedImage(f"d{i}", np.full((2, 3), i, np.uint8)) for i in range(6)]
    tiled = mosaic(digits).pixels  # 6 items -> 2 columns, 3 rows
    assert tiled.shape == (6, 6) and np.array_equal(tiled[2:4, 3:6], digits[3].pixels)
    with pytest.raises(DatasetError, match="patches or crop"):
        DatasetView.parse("kodak:patches=8,crop=8")


def test_unknown_model_key_in_a_built_config_names_it():
    with pytest.raises(Exception, match="latent_dim"):
        build("beta-vae", latent_dim="four")


def test_every_zoo_file_is_listed_small_and_intact():
    entries = zoo.index()
    assert entries, f"no zoo index in {zoo.zoo_dir()}"
    for name, entry in entries.items():
        path = zoo.resolve(f"zoo:{name}")
        assert path.stat().st_size == entry["bytes"] <= zoo.MAX_BYTES, name
        tensors, meta = checkpoint.read(path)  # verifies the tensors' SHA-256
        assert meta["model"] == entry["model"] and meta["optimizer"] is None, name
        assert all(key.startswith("model/") for key in tensors), name
        assert entry["provenance"]["command"].startswith("vlae-bench train"), name


def test_a_zoo_model_reproduces_its_committed_number(binarized_mnist_dir, tmp_path):
    from benchmarks.runs.model_runs import eval_to

    name = "beta-vae-binarized-mnist"
    reference = zoo.index()[name]["reference"]["test/500/elbo"]
    store = eval_to(tmp_path, f"zoo:{name}", "binarized-mnist", limit=500,
                    data_dir=binarized_mnist_dir.parent, progress=False)  # fmt: skip
    (row,) = store.frame().to_dict("records")
    assert row["n_examples"] == reference["n_examples"] == 500
    for key in ("neg_elbo_nats", "kl_nats", "distortion_nats"):
        assert row[key] == pytest.approx(reference[key], rel=1e-4), key


@pytest.mark.parametrize(
    "name",
    ["vlae-binarized-mnist", "vlae-binarized-mnist-10k", "hierarchical-vlae-binarized-mnist"],
)
def test_fp16_storage_of_a_zoo_vlae_keeps_its_numbers(binarized_mnist_dir, name):
    """The VLAEs ship in half precision (17.8 MB in float32 is over the zoo's limit). The
    −ELBO on 500 test images is within 0.01 nats of the float32 weights' (measured from the
    training checkpoint at export, results/zoo/checks/), and equal to the committed check."""
    from benchmarks.runs.model_runs import load_pixels
    from vlae_models.evaluate import evaluate

    checks = zoo.zoo_dir() / "checks"
    fp32 = pd.read_parquet(checks / f"{name}-fp32" / "results.parquet").iloc[0]
    fp16 = pd.read_parquet(checks / name / "results.parquet").iloc[0]
    assert zoo.index()[name]["storage"] == "float16"
    model, meta = checkpoint.load(zoo.resolve(f"zoo:{name}"))
    seed = meta["train_config"]["seed"]
    pixels = load_pixels("binarized-mnist", "test", binarized_mnist_dir.parent, seed, limit=500)
    (row,) = evaluate(model, pixels, seed=seed, mutual_info=False)
    assert row["neg_elbo_nats"] == pytest.approx(fp16["neg_elbo_nats"], rel=1e-4)
    assert abs(row["neg_elbo_nats"] - fp32["neg_elbo_nats"]) < 0.01


def test_evaluating_in_this_process_leaves_the_callers_thread_count(kodak_dir):
    """``workers=1`` runs the tasks here with one torch thread, and gives the caller's back."""
    import torch

    from benchmarks import evaluate, load_items

    items = load_items("kodak:crop=32", data_dir=kodak_dir.parent, limit=2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        table = evaluate(items, ["png", "jpeg=50"], workers=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(table) == 4 and set(table["method"]) == {"png", "jpeg"}


def test_the_vlaes_per_image_kl_agrees_with_its_likelihood_pass(binarized_mnist_dir):
    """The VLAE states a one-sample KL estimate per image. Drawn with one seed for every
    image, the samples shared their noise: the codec pass's mean KL was 5.6 nats where the
    likelihood pass gave 8.6 on the same images. Seeded by each image, the two agree within
    the estimate's standard error."""
    import torch

    from benchmarks import load_items
    from benchmarks.datasets.pixels import load_pixels
    from vlae_models.checkpoint import load
    from vlae_models.evaluate import evaluate as likelihood
    from vlae_models.zoo import resolve

    root = binarized_mnist_dir.parent
    items = load_items("binarized-mnist", split="test", limit=200, data_dir=root)
    (setting,), _ = plan(["zoo:vlae-binarized-mnist"], None)
    method = setting.build()
    method.setup("cpu")  # the rate each row states, without its pixel-by-pixel decode
    kl = np.array([method.stated(item.pixels)[1]["kl"] for item in items])
    model, _ = load(resolve("zoo:vlae-binarized-mnist"), weights="ema")
    torch.manual_seed(0)
    (split,) = likelihood(model, load_pixels("binarized-mnist", "test", root, limit=200))
    standard_error = kl.std(ddof=1) / np.sqrt(len(kl))
    assert len(kl) == 200 and abs(kl.mean() - split["kl_nats"]) < 4 * standard_error + 0.1
