"""CompressAI architectures as methods: checkpoints in CompressAI's layout, real bitstreams,
the pretrained zoo refused offline. Weights here are small random ones (CompressAI's
pretrained weights cannot be downloaded on this machine)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_one_line_error, run_cli

pytest.importorskip("compressai")


@pytest.fixture(scope="module")
def hyperprior_checkpoint(tmp_path_factory):
    from compressai.models import ScaleHyperprior

    torch.manual_seed(0)
    net = ScaleHyperprior(N=16, M=24)
    path = tmp_path_factory.mktemp("ckpt") / "hyperprior.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 0}, path)  # CompressAI's layout
    return path


def test_a_compressai_checkpoint_codes_real_bytes_beside_its_estimate(
    monkeypatch, capsys, kodak3, hyperprior_checkpoint, tmp_path
):
    from compressai.zoo.image import model_architectures

    out = tmp_path / "run"
    args = ["codecs", "--dataset", "kodak:crop=100", "--data-dir", str(kodak3), "--limit", "2",
            "-c", "jpeg", "--quality", "50", "-c", f"bmshj2018-hyperprior:{hyperprior_checkpoint}",
            "--workers", "1", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    table = pd.read_parquet(out / "results.parquet")
    learned = table[table["method"] == "bmshj2018-hyperprior"]
    assert sorted(learned["rate_kind"]) == ["coded", "coded", "estimate", "estimate"]
    coded = learned[learned["rate_kind"] == "coded"].set_index("image")
    estimate = learned[learned["rate_kind"] == "estimate"].set_index("image")
    assert (coded["bpp"] == coded["n_bytes"] * 8 / (100 * 100)).all()  # unpadded pixels
    # the scored reconstruction is CompressAI's own decompress(compress(x)), cropped back
    state = torch.load(hyperprior_checkpoint, weights_only=True)["state_dict"]
    net = model_architectures["bmshj2018-hyperprior"].from_state_dict(state).eval()
    net.update(force=True)
    from benchmarks.datasets import load_items
    from benchmarks.metrics.image import psnr

    for item in load_items("kodak:crop=100", data_dir=kodak3, limit=2):
        x = torch.from_numpy(item.pixels).permute(2, 0, 1)[None].float() / 255
        padded = torch.nn.functional.pad(x, (14, 14, 14, 14))  # 100 -> 128, centred
        with torch.no_grad():
            likelihoods = net(padded)["likelihoods"].values()  # CompressAI's own forward pass
            bits = float(sum(-torch.log2(p).sum() for p in likelihoods))
            stream = net.compress(padded)
            x_hat = net.decompress(stream["strings"], stream["shape"])["x_hat"]
        pixels = (x_hat[..., 14:114, 14:114].clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0)
        assert coded.loc[item.name, "n_bytes"] == sum(len(s[0]) for s in stream["strings"])
        assert estimate.loc[item.name, "bpp"] == pytest.approx(bits / (100 * 100), rel=1e-6)
        assert coded.loc[item.name, "psnr"] == pytest.approx(psnr(item.pixels, pixels.numpy()))


def test_pretrained_weights_are_refused_offline_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("VLAE_BENCH_OFFLINE", "1")
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "-c", "bmshj2018-factorized=1",
                           "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(code, err, "pretrained", "bmshj2018-factorized:PATH")


def test_a_checkpoint_of_the_wrong_layout_is_one_line(monkeypatch, capsys, kodak3, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"weights": {"conv.weight": torch.zeros(1)}}, bad)
    args = [
        "codecs",
        "--dataset",
        "kodak",
        "--data-dir",
        str(kodak3),
        "--limit",
        "1",
        "-c",
        f"mbt2018-mean:{bad}",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "o"),
    ]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, "no CompressAI state dict", "g_a.0.weight")


def test_gray_or_binary_items_are_refused_by_an_rgb_codec():
    from baselines.learned import CompressAICodec
    from baselines.method import MethodError

    codec = CompressAICodec.__subclasses__()[0](0, None)
    codec.device = torch.device("cpu")
    with pytest.raises(MethodError, match="RGB"):
        codec.encode(np.zeros((28, 28), np.uint8))
