"""The perception–distortion plane: rates matched by log-rate interpolation inside each
method's own range, families read off the stated rates, each family's frontier; and the
VLAE decoded to its decoder's means beside its draws, from the same stream."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli

from benchmarks import evaluate, load_items
from benchmarks.report.perception import families, frontier, matched, target_rates


def curve(method: str, kind: str, points: list[tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": method, "rate_kind": kind, "bpp": b, "psnr": p,
                          "lpips_alex": d} for b, p, d in points])  # fmt: skip


@pytest.fixture()
def agg() -> pd.DataFrame:
    return pd.concat([
        curve("jpeg", "coded", [(0.25, 26.0, 0.40), (1.0, 32.0, 0.10)]),
        curve("nets", "coded", [(0.2, 28.0, 0.30), (0.8, 31.0, 0.20)]),
        curve("nets", "estimate", [(0.19, 28.0, 0.30), (0.78, 31.0, 0.20)]),
        curve("vlae", "coded", [(0.1, 15.0, 0.25), (0.5, 16.0, 0.15)]),
        curve("vlae", "kl", [(0.08, 15.0, 0.25), (0.45, 16.0, 0.15)]),
    ], ignore_index=True)  # fmt: skip


def test_families_come_from_the_stated_rates(agg):
    named = dict(zip(agg["method"], families(agg, draws={"vlae"}), strict=True))
    assert named == {"jpeg": "classical codec", "nets": "learned codec",
                     "vlae": "latent-variable model (draw)"}  # fmt: skip


def test_rates_are_matched_in_log_rate_and_never_extrapolated(agg):
    points = matched(agg, "lpips_alex", draws=set())
    assert set(points["bpp"]) == set(target_rates({"jpeg": (0.25, 1.0), "nets": (0.2, 0.8),
                                                   "vlae": (0.1, 0.5)}))  # fmt: skip
    for _, row in points.iterrows():
        lo, hi = {"jpeg": (0.25, 1.0), "nets": (0.2, 0.8), "vlae": (0.1, 0.5)}[row["method"]]
        assert lo <= row["bpp"] <= hi  # inside its own range
    jpeg = points[points["method"] == "jpeg"].iloc[0]
    share = math.log(jpeg["bpp"] / 0.25) / math.log(1.0 / 0.25)
    assert jpeg["psnr"] == pytest.approx(26 + share * 6)
    assert jpeg["lpips_alex"] == pytest.approx(0.40 - share * 0.30)


def test_each_rate_is_inside_two_ranges_at_least():
    rates = target_rates({"a": (0.1, 0.3), "b": (0.2, 1.0), "c": (2.0, 4.0)})
    assert rates and all(0.2 <= r <= 0.3 for r in rates)


def test_the_frontier_keeps_only_unbeaten_points():
    points = pd.DataFrame({"psnr": [30, 28, 31, 29], "lpips_alex": [0.2, 0.1, 0.3, 0.25]})
    kept = frontier(points, "lpips_alex")
    assert sorted(kept.index) == [0, 1, 2]  # (29, 0.25) is beaten by (30, 0.2)


def test_the_vlae_decodes_to_its_means_from_the_same_stream(binarized_mnist_dir):
    items = load_items("binarized-mnist", data_dir=binarized_mnist_dir.parent, limit=2)
    table = evaluate(items, ["zoo:vlae-binarized-mnist", "zoo-mean:vlae-binarized-mnist"])
    coded = table[table["rate_kind"] == "coded"].set_index(["method", "image"])
    draw, mean = coded.loc["vlae"], coded.loc["vlae-mean"]
    assert (draw["n_bytes"] == mean["n_bytes"]).all()  # one stream, two decodings
    assert set(draw["decoded_as"]) == {"draw"} and set(mean["decoded_as"]) == {"mean"}
    assert not np.allclose(draw["bit_error_rate"], mean["bit_error_rate"])


def test_a_model_that_decodes_to_its_mean_already_is_refused(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", "binarized-mnist",
                           "-c", "zoo-mean:beta-vae-binarized-mnist", "--out",
                           str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "whose decoder gives its mean already",
                          "-c zoo:beta-vae-binarized-mnist")  # fmt: skip
