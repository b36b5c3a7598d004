"""Learned codecs end to end: CompressAI nets trained by the suite's loop, checked against
CompressAI's own ``eval_model``; every learned stream decodes to exactly what was scored; the
container refuses other weights and warns on another setup; mutated streams are refused or
decoded, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import RANDOM_NETS, random_net, run_cli
from PIL import Image

pytest.importorskip("compressai")

ARCH = "bmshj2018-factorized"


def _train(out: Path, root: Path, steps: int) -> Path:
    from benchmarks.runs.model_runs import train_config, train_to

    sets = [
        "N=16",
        "M=24",
        "image_size=64",
        "crop=64",
        "batch_size=4",
        "optimizer=adam",
        "lr=1e-3",
        "progress=false",
        "log_every=1",
        "checkpoint_every=2",
        "lmbda=0.013",
    ]
    model_over, config = train_config(ARCH, sets, steps=steps)
    # the two images of the root (a partial Kodak is a folder of images, not "kodak")
    return train_to(out, ARCH, f"folder:{root / 'kodak'}:patches=128", model_config=model_over,
                    config=config, split="all")  # fmt: skip


@pytest.fixture(scope="module")
def kodak2(tmp_path_factory, kodak_dir):
    import shutil

    root = tmp_path_factory.mktemp("data")
    (root / "kodak").mkdir()
    for name in ("kodim01.png", "kodim02.png"):
        shutil.copy(kodak_dir / name, root / "kodak" / name)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kodak2):
    """A tiny factorized-prior net trained 6 steps by the suite's loop."""
    return _train(tmp_path_factory.mktemp("train") / "run", kodak2, steps=6)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, kodak_dir):
    """Two Kodak crops as PNG files: one a multiple of 64, one that needs padding."""
    folder = tmp_path_factory.mktemp("images")
    for name, (h, w) in (("kodim01", (192, 256)), ("kodim02", (177, 203))):
        pixels = np.asarray(Image.open(kodak_dir / f"{name}.png").convert("RGB"))[:h, :w]
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return folder


def test_training_logs_compressai_loss_and_resumes_exactly(tmp_path, kodak2, trained):
    from vlae_models.checkpoint import read

    lines = (trained.parent / "train_log.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines]
    assert [r["step"] for r in log] == list(range(1, 7)) and all(r["rate"] > 0 for r in log)
    # 4 steps, stopped, resumed to 6: bit-identical to the uninterrupted run (crops included)
    _train(tmp_path / "split", kodak2, steps=4)
    resumed = _train(tmp_path / "split", kodak2, steps=6)
    a, b = read(trained)[0], read(resumed)[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_eval_model_reads_our_export_and_agrees_with_our_numbers(
    monkeypatch, capsys, trained, image_folder, tmp_path
):
    exported = tmp_path / "net.pth.tar"
    code, _, err = run_cli(monkeypatch, capsys, "export-compressai", str(trained), str(exported))
    assert code == 0, err
    theirs = subprocess.run(
        [sys.executable, "-m", "compressai.utils.eval_model", "checkpoint", str(image_folder),
         "-a", ARCH, "-p", str(exported)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    reference = {k: v[0] for k, v in json.loads(theirs.stdout)["results"].items()}
    out = tmp_path / "ours"
    args = ["codecs", "--dataset", f"folder:{image_folder}", "-c", f"{ARCH}:{exported}",
            "-c", f"{ARCH}:{trained}", "--workers", "1", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    table = pd.read_parquet(out / "results.parquet")
    coded = table[table["rate_kind"] == "coded"]
    assert sorted(coded["param"].unique()) == ["checkpoint", "lambda"]
    for _, rows in coded.groupby("param"):  # the exported file and our checkpoint alike
        assert rows["bpp"].mean() == pytest.approx(reference["bpp"], rel=1e-12)
        # eval_model computes in float32, we in float64
        assert rows["psnr"].mean() == pytest.approx(reference["psnr-rgb"], rel=1e-6)
        assert rows["ms_ssim"].mean() == pytest.approx(reference["ms-ssim-rgb"], rel=1e-5)
    # the whole container is counted too, beside CompressAI's payload count
    assert (coded["container_bytes"] > coded["n_bytes"]).all()


def _method(spec: str):
    from baselines.method import plan

    (setting,), _ = plan([spec], None)
    method = setting.build()
    method.setup("cpu")
    return method


def _round_trip_matches_the_table(monkeypatch, capsys, tmp_path, spec, dataset, data_dir):
    """Run `codecs`; then encode and decode every item anew: the decoded image must be the one
    the table scored (same metric), and encoding must be deterministic."""
    from benchmarks.datasets import load_items
    from benchmarks.metrics import DEFAULT, Scorer

    out = tmp_path / "run"
    args = ["codecs", "--dataset", dataset, "--data-dir", str(data_dir), "--limit", "2",
            "-c", spec, "--workers", "1", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    table = pd.read_parquet(out / "results.parquet").query("rate_kind == 'coded'")
    table = table.set_index("image")
    method = _method(spec)
    for item in load_items(dataset, data_dir=data_dir, limit=2):
        data = method.encode(item.pixels)
        assert data == method.encode(item.pixels)
        assert len(data) == table.loc[item.name, "container_bytes"]
        decoded = method.decode(data)
        assert decoded.dtype == np.uint8 and decoded.shape == item.pixels.shape
        scored = Scorer(DEFAULT, item.pixels, item.binary)(decoded)
        key = "bit_error_rate" if item.binary else "psnr"
        assert table.loc[item.name, key] == pytest.approx(scored[key], rel=1e-12)
    return table


def test_compressai_round_trip_on_kodak(monkeypatch, capsys, tmp_path, trained, kodak2):
    _round_trip_matches_the_table(
        monkeypatch, capsys, tmp_path, f"{ARCH}:{trained}", "kodak:crop=96", kodak2
    )


@pytest.mark.parametrize("name", ["beta-vae", "hvae", "vq-vae", "vlae"])
def test_our_models_code_real_bits_next_to_their_bound_on_mnist(
    monkeypatch, capsys, tmp_path, data_root, name
):
    spec = f"zoo:{name}-binarized-mnist"
    table = _round_trip_matches_the_table(
        monkeypatch, capsys, tmp_path, spec, "binarized-mnist", data_root
    )
    # coded is real bytes over 784 pixels; the bound sits in the same row
    assert (table["bpp"] == table["n_bytes"] * 8 / 784).all()
    if name == "vq-vae":
        run = pd.read_parquet(tmp_path / "run" / "results.parquet").set_index(
            ["image", "rate_kind"]
        )
        assert sorted(set(run.index.get_level_values(1))) == ["coded", "fixed", "prior"]
        # the rANS string costs at least the ideal code length under the same prior
        for image in table.index:
            assert table.loc[image, "rate_nats"] >= run.loc[(image, "prior"), "rate_nats"]
    else:
        assert (table["kl_nats"] > 0).all() and (table["rate_nats"] > table["kl_nats"]).all()


@pytest.mark.parametrize("name", ["hvae", "vq-vae", "vlae"])
def test_our_rgb_models_round_trip_tiled_kodak_images(monkeypatch, capsys, tmp_path, kodak2, name):
    """Random RGB models on 32x32 tiles of a 64x80 Kodak crop (2 x 3 tiles, the last column
    padded by edge replication): what the table scored is what the stream decodes to."""
    from vlae_models import checkpoint
    from vlae_models.core import build

    torch.manual_seed(0)
    likelihood = "logistic" if name == "vq-vae" else "logistic-mixture"
    model = build(name, in_channels=3, image_size=32, likelihood=likelihood)
    path = tmp_path / f"{name}.safetensors"
    checkpoint.save(path, model)
    kodak_crop = tmp_path / "crop"
    (kodak_crop / "kodak").mkdir(parents=True)
    pixels = np.asarray(Image.open(kodak2 / "kodak" / "kodim01.png"))[:64, :80]
    Image.fromarray(pixels).save(kodak_crop / "kodak" / "kodim01.png")
    _round_trip_matches_the_table(
        monkeypatch, capsys, tmp_path, f"model:{path}", f"folder:{kodak_crop / 'kodak'}",
        kodak_crop,
    )  # fmt: skip


def test_beta_vae_tiles_an_rgb_image_and_codes_at_its_ideal_length(
    monkeypatch, capsys, tmp_path, kodak2
):
    """A random RGB β-VAE on 32x32 tiles of Kodak crops (96x96 -> 9 tiles): the rANS string is
    within a few bytes of the ideal code length computed from the Gaussian CDF directly."""
    from benchmarks.datasets import load_items
    from vlae_models import checkpoint
    from vlae_models.core import build
    from vlae_models.entropy import NOISE_STEP, GaussianCoder, pack_steps

    torch.manual_seed(0)
    model = build("beta-vae", in_channels=3, image_size=32, likelihood="logistic-mixture")
    path = tmp_path / "vae.safetensors"
    checkpoint.save(path, model)
    _round_trip_matches_the_table(
        monkeypatch, capsys, tmp_path, f"model:{path}", "kodak:crop=96", kodak2
    )
    from baselines.models import to_tiles

    item = load_items("kodak:crop=96", data_dir=kodak2, limit=1)[0]
    x = model.prepare(to_tiles(item.pixels, 32))
    assert x.shape == (9, 3, 32, 32)
    coded = model.compress(x)
    with torch.no_grad():
        mean, std = model.encode(x)
    _, step = pack_steps(NOISE_STEP * std.mean(0))
    ideal = GaussianCoder().bits(mean, torch.zeros_like(mean), torch.ones_like(mean), step)
    assert ideal / 8 <= len(coded["strings"][1]) <= ideal / 8 + 8


def test_the_container_refuses_other_weights_and_warns_on_another_setup(trained, kodak2):
    from baselines import container
    from baselines.container import SetupMismatchWarning, StreamError
    from benchmarks.datasets import load_items

    method = _method(f"{ARCH}:{trained}")
    image = load_items("kodak:crop=64", data_dir=kodak2, limit=1)[0].pixels
    data = method.encode(image)
    other = _method("zoo:beta-vae-binarized-mnist")
    with pytest.raises(StreamError, match="another method or other weights"):
        other.decode(data)
    stream = container.unpack(data, method.identity)

    def forged(**changes: object) -> bytes:  # as a forger would: a valid CRC over new facts
        return container.pack({**method.identity, **stream.header, **changes}, stream.strings)

    assert forged() == data
    with pytest.warns(SetupMismatchWarning, match="another device class"):
        assert np.array_equal(method.decode(forged(device="NVIDIA H200")), method.decode(data))
    with pytest.raises(StreamError, match="CRC"):
        method.decode(data[:-1] + bytes([data[-1] ^ 1]))
    # a forged header cannot make the decoder allocate an enormous image
    with pytest.raises(StreamError, match="60000x60000 image, over the limit"):
        method.decode(forged(image=[60000, 60000]))


def test_the_header_is_small_beside_a_digits_payload():
    """26 bytes around one string on a 28 x 28 image; the JSON header of format 1 was ~160."""
    from baselines import container

    identity = {"method": "beta-vae", "config": "0" * 16, "versions": "v", "device": "cpu"}
    payload = bytes(range(12))
    data = container.pack({**identity, "image": [28, 28], "latent": [1, 32]}, [payload])
    # magic and version, two digests, field count, two fields (code, n, 2 values), string
    # count, no length for the only string, CRC-32
    assert len(data) - len(payload) == 4 + 8 + 1 + 2 * (1 + 1 + 2) + 1 + 4
    stream = container.unpack(data, identity)
    assert stream.strings == [payload] and stream.header == {"image": [28, 28], "latent": [1, 32]}
    two = container.pack({**identity, "lanes": [300, 2]}, [b"a" * 300, b"bc"])
    assert container.unpack(two, identity).strings == [b"a" * 300, b"bc"]


@pytest.mark.parametrize(
    "which",
    ["factorized", *(pytest.param(which, marks=pytest.mark.slow) for which in
                     (*RANDOM_NETS, "beta-vae", "hvae", "vq-vae", "vlae"))],
)  # fmt: skip
def test_mutated_streams_are_refused_or_decoded_never_a_crash(
    which, trained, kodak2, tmp_path, data_root
):
    """600 mutated streams per learned codec, in a subprocess so that a segfault or a hang
    fails the test instead of killing pytest. The default suite runs one codec this way;
    every stream method, and each of the zoo's model codecs, decodes 30 mutated streams in
    tests/test_stream_protocol.py, and the 600-stream runs of the others are `slow`."""
    if which == "factorized":
        spec, dataset, root = f"{ARCH}:{trained}", "kodak:crop=96", kodak2
    elif which in ("beta-vae", "hvae", "vq-vae", "vlae"):
        spec, dataset, root = f"zoo:{which}-binarized-mnist", "binarized-mnist", data_root
    else:
        spec, dataset, root = f"{which}:{random_net(which, tmp_path)}", "kodak:crop=96", kodak2
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "fuzz", "-c", spec, "--dataset", dataset,
         "--data-dir", str(root), "--streams", "600"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    counts = {}
    for line in done.stdout.splitlines()[:-1]:
        kind, crc, outcome, count = line.split()
        counts[(kind, crc, outcome)] = int(count)
    assert sum(counts.values()) == 600 and "600 streams" in done.stdout.splitlines()[-1]
    assert {outcome for _, _, outcome in counts} <= {"refused", "decoded"}
    # the CRC catches every stream it was not recomputed for
    assert all(o == "refused" for (_, crc, o) in counts if crc == "crc-kept")


def test_learned_codec_misuse_is_one_line(monkeypatch, capsys, trained, kodak2, tmp_path):
    from conftest import assert_one_line_error

    cases = [
        (["eval", str(trained), "--dataset", "kodak", "--data-dir", str(kodak2)], "a codec"),
        (["train", ARCH, "--dataset", "kodak", "--split", "all", "--steps", "1"],
         "one shape"),  # all 24 Kodak images: landscape and portrait
        (["train", ARCH, "--dataset", f"folder:{kodak2 / 'kodak'}:crop=256", "--split", "all",
          "--steps", "1", "--set", "in_channels=1"], "in_channels must be 3"),
        (["codecs", "-c", f"bmshj2018-hyperprior:{trained}", "--dataset", "kodak",
          "--data-dir", str(kodak2), "--limit", "2"], "not a bmshj2018-hyperprior"),
        (["fuzz", "-c", "png", "--dataset", "kodak:crop=64", "--data-dir", str(kodak2),
          "--limit", "2", "--streams", "3"], None),
    ]  # fmt: skip
    for i, (args, fragment) in enumerate(cases):
        out_dir = [] if args[0] == "fuzz" else ["--out", str(tmp_path / str(i))]
        code, out, err = run_cli(monkeypatch, capsys, *args, *out_dir)
        if fragment is None:  # a classical codec fuzzes too: PIL refuses or decodes
            assert code == 0 and "3 streams" in out, err
        else:
            assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize(
    "spec", ["png", "jpeg=50", "webp=50", "avif=50", "jpeg2000=30", "jxl=50", "gzip", "lzma"]
)
def test_classical_codecs_refuse_corrupt_streams_in_one_line(spec, kodak2):
    """Found by the fuzzer: Pillow's and the compressors' own exceptions (OSError,
    RuntimeError, zlib and LZMA errors) used to escape as tracebacks."""
    from baselines.method import METHODS
    from benchmarks.evaluation.fuzz import fuzz_spec

    if METHODS[spec.split("=")[0]].unavailable_reason():
        pytest.skip(f"{spec} is unavailable here")
    found = fuzz_spec(spec, "kodak:crop=64", data_dir=kodak2, n=150)
    assert found.total == 150 and not found.failures, found.failures[:3]
    assert found.counts[("truncated", "crc-kept", "refused")] > 0
