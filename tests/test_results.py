"""Results store, aggregation, report and plots on real codec output."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from baselines.method import MethodError, Setting, parse_values, plan
from benchmarks.errors import BenchError
from benchmarks.evaluation.engine import run_tasks
from benchmarks.report import render_report
from benchmarks.report.plots import MARKER_PT, min_marker_gap, rd_figure
from benchmarks.results import COLUMNS, aggregate, make_frame, read_results, write_results


@pytest.fixture(scope="module")
def frame(kodak_dir) -> pd.DataFrame:
    from benchmarks.datasets import load_images

    images = load_images("kodak", data_dir=kodak_dir.parent, limit=3)
    settings = [Setting("jpeg", "jpeg", "quality", q) for q in range(5, 100, 5)]
    settings += [Setting("webp", "webp", "quality", q) for q in (10, 50, 90)]
    settings += [Setting("png", "png", "level", 6)]
    common = {"dataset": "kodak", "run_id": "test"}
    rows = [r for batch in run_tasks(images, settings, common=common, workers=1, progress=False)
            for r in batch]  # fmt: skip
    return make_frame(rows)


def test_rows_are_tidy_and_complete(frame):
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert len(frame) == 3 * (19 + 3 + 1)
    assert frame.groupby(["method", "value", "image"]).size().max() == 1
    assert set(frame["rate_kind"]) == {"coded"}
    assert frame["kl_nats"].isna().all()  # not applicable -> NaN, never 0
    row = frame.iloc[0]
    assert row["bpp"] == pytest.approx(row["n_bytes"] * 8 / (row["height"] * row["width"]))


def test_aggregate_averages_psnr_per_image(frame):
    agg = aggregate(frame)
    one = frame[(frame["method"] == "jpeg") & (frame["value"] == 50)]
    got = agg[(agg["method"] == "jpeg") & (agg["value"] == 50)].iloc[0]
    assert got["psnr"] == pytest.approx(one["psnr"].mean())
    pooled = 10 * np.log10(255**2 / one["mse"].mean())
    assert got["psnr"] != pytest.approx(pooled, abs=1e-9)  # not the PSNR of the mean MSE
    assert got["n_images"] == 3
    assert math.isinf(agg[agg["method"] == "png"].iloc[0]["psnr"])


def test_store_round_trip_parquet_and_csv(frame, tmp_path):
    write_results(frame, tmp_path)
    for name in ("results.parquet", "results.csv"):
        back = read_results([tmp_path / name])
        assert len(back) == len(frame)
        assert np.allclose(back["psnr"].replace(np.inf, 1e9), frame["psnr"].replace(np.inf, 1e9))
    assert not list(tmp_path.glob(".results*"))  # no temporary files left behind


def test_read_results_errors(tmp_path):
    with pytest.raises(BenchError, match="no results"):
        read_results([tmp_path])
    (tmp_path / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(BenchError, match="results.sha256 is missing"):
        read_results([tmp_path])
    with pytest.raises(BenchError, match="cannot read results file"):
        read_results([tmp_path], unverified_ok=True)


def test_unknown_rate_kind_is_refused():
    with pytest.raises(BenchError, match="rate_kind"):
        make_frame([{"method": "x", "value": 1, "rate_kind": "guess"}])


def test_plot_markers_never_overlap_on_real_data(frame):
    fig = rd_figure(aggregate(frame), "psnr", "kodak")
    ax = fig.axes[0]
    assert all(line.get_markersize() == MARKER_PT for line in ax.lines)
    assert min_marker_gap(ax) >= MARKER_PT  # centres at least one marker diameter apart


def test_crowded_markers_are_thinned_not_shrunk():
    rate = np.r_[np.linspace(0.10, 0.12, 10), np.linspace(0.5, 3.0, 6)]
    agg = pd.DataFrame({"method": "codec", "rate_kind": "coded", "bpp": rate,
                        "psnr": 30 + 3 * np.log2(rate), "n_images": 1})  # fmt: skip
    ax = rd_figure(agg, "psnr", "crowded").axes[0]
    shown = ax.lines[0].get_markevery()
    assert 7 <= len(shown) < 16  # the ten crowded points keep only a few markers
    assert min_marker_gap(ax) >= MARKER_PT
    assert "bpp" not in ax.get_xlabel() or "bits per pixel" in ax.get_xlabel()
    assert "dB" in ax.get_ylabel() and ax.get_legend() is not None


def test_report_renders_tables_figures_and_bd(frame, tmp_path):
    files = render_report(frame, tmp_path, latex=True)
    names = {f.name for f in files}
    assert {"report.md", "report.tex", "rd_psnr_kodak.png", "rd_psnr_kodak.svg",
            "rd_ms_ssim_db_kodak.png"} <= names  # fmt: skip
    text = (tmp_path / "report.md").read_text()
    assert "3 images" in text and ": lossless" in text and "Bjøntegaard" in text
    assert "webp" in text and "PSNR-RGB" not in text  # the axis label is in the figure
    assert "BD-rate PSNR [\\%]" in (tmp_path / "report.tex").read_text()  # % escaped
    assert "\\begin{tabular}" in (tmp_path / "report.tex").read_text()


def test_parse_values_and_sweeps():
    assert parse_values("5:95:5") == list(range(5, 100, 5))
    assert parse_values("10,20") == [10, 20]
    assert parse_values("50,10,50") == [10, 50]  # a value given twice is one setting
    with pytest.raises(MethodError):
        parse_values("a:b")
    settings, notes = plan(["jpeg", "png", "jpeg2000", "jpeg"], "5:95:5")
    by_name: dict[str, list] = {}
    for s in settings:
        by_name.setdefault(s.method, []).append(s.value)
    assert by_name["jpeg"] == list(range(5, 100, 5)) and by_name["png"] == [6]
    assert any("jpeg2000" in n for n in notes) and any("asked twice" in n for n in notes)


def test_an_exact_image_among_lossy_ones_does_not_make_the_mean_infinite():
    rows = [{"dataset": "d", "method": "m", "param": "q", "value": 1, "rate_kind": "coded",
             "image": f"i{i}", "bpp": 1.0, "psnr": p, "height": 28, "width": 28, "channels": 1}
            for i, p in enumerate([30.0, 40.0, math.inf])]  # fmt: skip
    rows += [{**r, "value": 2, "psnr": math.inf} for r in rows]
    agg = aggregate(make_frame(rows)).set_index("value")
    ceiling = 10 * math.log10(255**2 * 28 * 28)  # one level of error in one pixel
    assert agg.loc[1, "psnr"] == pytest.approx((30 + 40 + ceiling) / 3)
    assert agg.loc[1, "n_exact"] == 1 and math.isinf(agg.loc[2, "psnr"])  # all exact: lossless
