"""The sweep's report on a real (small) β sweep: the rate–distortion plane, the β figures,
I(x;z) against the KL, the chapter's two figures, report.html and report.tex, and the demo
spec's arms on one table."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

import benchmarks
from benchmarks.report.beta import beta_points, chapter_bars, rd_plane_figure
from benchmarks.report.format import latex_document
from benchmarks.report.plots import pareto_front
from benchmarks.results import ALL_IMAGES, aggregate, read_results
from benchmarks.runs.runtime import Runtime
from benchmarks.runs.spec import expand, load_spec
from benchmarks.runs.sweep import finish_sweep, run_sweep

SPEC = """
[spec]
name = "beta-report"
[data]
datasets = ["binarized-mnist"]
[train]
steps = 12
batch_size = 32
checkpoint_every = 12
log_every = 4
[eval.passes.elbo]
limit = 48
[eval.passes.codec]
kind = "codec"
limit = 6
rate_kinds = ["coded"]  # the table keeps the codes; the forward pass's KL rows are left out
[[arms]]
name = "beta-vae"
model = "beta-vae"
set = { latent_dim = 4, width = 8 }
grid = { beta = [0.1, 1, 4] }
[[arms]]
name = "vlae"
model = "vlae"
set = { z_dim = 4, encoder_width = 8, cond_width = 8, flow_hidden = 16, pixelcnn_layers = 2 }
grid = { beta = [0.1, 1] }
[[arms]]
name = "jpeg"
codec = "jpeg"
quality = "50,90"
[[arms]]
name = "png"
codec = "png"
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory, binarized_mnist_dir) -> tuple[Path, pd.DataFrame, list[Path]]:
    root = tmp_path_factory.mktemp("beta")
    path = root / "spec.toml"
    path.write_text(SPEC)
    spec = load_spec(path)
    jobs, out = expand(spec), root / "out"
    runtime = Runtime(data_dir=binarized_mnist_dir.parent)
    summary = run_sweep(jobs, out, workers=2, runtime=runtime, echo=lambda _: None)
    assert not summary.failed, summary.errors
    table, files = finish_sweep(spec, jobs, out)
    return out, table, files


def test_the_rd_plane_draws_each_arm_at_its_measured_rate_and_distortion(swept):
    out, _, files = swept
    frame = read_results([out])
    elbo = frame[(frame["image"] == ALL_IMAGES) & (frame["pass"] == "elbo")]
    points = beta_points(frame)
    assert len(points) == 5  # 3 β-VAE + 2 VLAE β values
    for row in points.itertuples():
        mine = elbo[(elbo["method"] == row.arm) & (elbo["value"] == row.beta)]
        assert row.rate_nats == pytest.approx(float(mine["rate_nats"].iloc[0]), rel=1e-12)
        assert row.distortion_nats == pytest.approx(float(mine["distortion_nats"].iloc[0]))
    fig = rd_plane_figure(points, "t", entropy=float(points["distortion_nats"].max()))
    ax = fig.axes[0]
    iso = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert len(iso) >= 3
    for line in iso:  # every iso-ELBO line is D + R = const
        x, y = line.get_data()
        assert np.ptp(np.asarray(x) + np.asarray(y)) == pytest.approx(0.0, abs=1e-9)
    drawn = {line.get_label(): line for line in ax.lines}
    vlae = points[points["arm"] == "vlae"].sort_values("beta")
    np.testing.assert_allclose(drawn["vlae"].get_xdata(), vlae["distortion_nats"])
    np.testing.assert_allclose(drawn["vlae"].get_ydata(), vlae["rate_nats"])
    assert any(label.startswith("R = H − D") for label in drawn)
    names = {p.name for p in files}
    stems = ("rd_plane", "rate_distortion_vs_beta", "mutual_info_vs_kl", "reconstructions",
             "chapter_rate_distortion_vs_beta", "chapter_bits_per_pixel")  # fmt: skip
    for stem in stems:
        assert f"{stem}_binarized-mnist.png" in names, stem


def test_mutual_information_never_exceeds_the_kl(swept):
    """I(x;z) ≤ E KL(q(z|x) ‖ p(z)) for the β-VAE, whose KL is exact; the VLAE's is a
    one-sample estimate (its AF prior has no closed form), checked within its noise."""
    out, _, _ = swept
    points = beta_points(read_results([out]))
    assert points["mutual_info_nats"].notna().all()
    exact = points[points["arm"] == "beta-vae"]
    assert (exact["mutual_info_nats"] <= exact["rate_nats"] + 1e-9).all()
    assert (points["mutual_info_nats"] <= np.log(points["n_examples"]) + 1e-9).all()
    assert "I(x;z) ≤ KL" in (out / "report.md").read_text()


def test_the_points_say_which_pass_they_came_from(swept):
    frame = read_results([swept[0]])
    assert beta_points(frame).attrs["estimator"] == "elbo"
    # The same rows as a run with only an IWAE pass would have them: no ELBO estimator.
    iwae_only = frame.assign(estimator=frame["estimator"].replace("elbo", "iwae k=5"))
    assert beta_points(iwae_only).attrs["estimator"] == "iwae k=5"


def test_the_chapter_bars_are_the_coded_rates_of_the_same_images(swept):
    out, _, _ = swept
    frame = read_results([out])
    bars = chapter_bars(frame).set_index("label")
    assert set(bars.index) == {"JPEG q=50", "JPEG q=90", "PNG (lossless)", "VLAE β=0.1 (z only)",
                               "VLAE β=1 (z only)"}  # fmt: skip
    agg = aggregate(frame[frame["image"] != ALL_IMAGES])
    coded = agg[agg["rate_kind"] == "coded"].set_index(["method", "value"])["bpp"]
    assert bars.loc["PNG (lossless)", "bpp"] == pytest.approx(coded.loc[("png", 6.0)])
    assert bars.loc["VLAE β=0.1 (z only)", "bpp"] == pytest.approx(coded.loc[("vlae", 0.1)])
    assert bars.loc["PNG (lossless)", "decodes"] == "exact"
    assert set(bars["n_images"]) == {6}


def test_the_arm_table_has_every_arm_and_value_with_its_rate_kind(swept):
    _, table, _ = swept
    arms = set(zip(table["arm"], table["β/λ/q"], strict=True))
    assert {("beta-vae", 0.1), ("beta-vae", 4.0), ("vlae", 1.0), ("png", 6.0)} <= arms
    assert {"coded", "kl"} <= set(table["rate kind"])
    assert {"elbo", "per image"} <= set(table["estimator"])
    per_image = table[table["estimator"] == "per image"]
    assert set(per_image["rate kind"]) == {"coded"}  # the pass's rate_kinds


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_report_html_is_one_self_contained_page(swept):
    out, _, files = swept
    html = (out / "report.html").read_text()
    parser = _Collector()
    parser.feed(html)
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", (out / "report.md").read_text())
    assert len(parser.sources) == len(shown) >= 6
    assert all(src.startswith("data:image/png;base64,") for src in parser.sources)
    assert parser.tables >= 3 and html.rstrip().endswith("</html>")


def test_report_tex_is_a_complete_document():
    text = latex_document(
        ["% Arms: 50% of β_1 & more", "\\begin{tabular}{lr}\na & 1 \\\\\n\\end{tabular}"]
    )
    assert text.startswith("\\documentclass") and text.rstrip().endswith("\\end{document}")
    assert "50\\% of β\\_1 \\& more" in text
    assert text.count("\\begin{") == text.count("\\end{")
    depth = 0
    for char in text.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0


def test_a_pareto_front_leaves_out_dominated_points():
    points = pd.DataFrame({
        "curve": ["a"] * 5 + ["b"],
        "bpp": [0.1, 0.2, 0.3, 0.25, 0.4, 0.2],
        "psnr": [20.0, 25.0, 24.0, 26.0, 26.0, 10.0],
    })  # fmt: skip
    front = pareto_front(points, "bpp", "psnr", "curve")
    # (0.3, 24) is beaten by (0.2, 25); (0.4, 26) by (0.25, 26); b's one point is its front
    assert front.tolist() == [True, True, False, True, False, True]


def test_the_demo_spec_puts_models_learned_and_classical_codecs_on_one_table(
    tmp_path, monkeypatch, capsys
):
    """The demo's spec without the VLAE (whose pixel-by-pixel decode takes most of the
    demo's minutes; `nox -s slow` runs the whole `vlae-bench demo`)."""
    spec = Path(benchmarks.__file__).parent / "specs" / "demo.toml"
    out = tmp_path / "demo"
    only = [flag for a in load_spec(spec).arms if a.name != "vlae" for flag in ("--only", a.name)]
    code, stdout, err = run_cli(monkeypatch, capsys, "sweep", str(spec), "--out", str(out),
                                "-j", "2", *only)  # fmt: skip
    assert code == 0, err
    table = read_results([out])
    kinds = {
        "model": table["model"].eq("beta-vae").any(),
        "learned codec": table["model"].eq("bmshj2018-factorized").any(),
        "classical codec": table["method"].isin(["jpeg", "webp", "png"]).any(),
    }
    assert all(kinds.values()), kinds
    assert (out / "report.html").exists() and (out / "rd_psnr_embedded_crop_128.png").exists()
    assert "beta-vae" in stdout and "webp" in stdout
    # the page says, beside the numbers, that the photo models were trained on these photos;
    # so does a report re-rendered from the table alone
    note = "trained on 256 × 256 tiles of these same seven photos"
    assert note in (out / "report.md").read_text() and note in (out / "report.html").read_text()
    assert (
        run_cli(monkeypatch, capsys, "report", str(out), "--out", str(tmp_path / "again"))[0] == 0
    )
    assert note in (tmp_path / "again" / "report.md").read_text()


@pytest.mark.slow
def test_vlae_bench_demo_runs_the_whole_demo_offline(tmp_path, monkeypatch, capsys):
    """`vlae-bench demo` with no data folder: every arm, one table, the report."""
    monkeypatch.delenv("VLAE_BENCH_DATA", raising=False)
    out = tmp_path / "demo"
    code, stdout, err = run_cli(monkeypatch, capsys, "demo", "--out", str(out))
    assert code == 0, err
    table = read_results([out])
    assert set(table["arm"]) == {a.name for a in load_spec(
        Path(benchmarks.__file__).parent / "specs" / "demo.toml").arms}  # fmt: skip
    assert "report.html" in stdout


DEMO_LABELS = {"β-VAE": "beta-vae", "VLAE": "vlae", "bmshj2018-factorized":
               "bmshj2018-factorized", "JPEG": "jpeg", "WebP": "webp", "PNG": "png"}  # fmt: skip


def test_the_committed_demo_readme_quotes_the_committed_table():
    """results/demo/README.md's table is read off results/demo's results table: each bpp and
    PSNR it quotes is one of that method's means, at the precision quoted."""
    folder = Path(__file__).parents[1] / "results" / "demo"
    means = read_results([folder]).groupby(["method", "value", "rate_kind"])[["bpp", "psnr"]]
    means = means.mean().reset_index()
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in (folder / "README.md").read_text().splitlines()
        if line.startswith("| ") and line.split("|")[1].strip() in DEMO_LABELS
    ]
    assert {row[0] for row in rows} == set(DEMO_LABELS)
    for label, _, _, bpp_cell, psnr_cell in rows:
        method = means[means["method"] == DEMO_LABELS[label]]
        for column, cell in (("bpp", bpp_cell), ("psnr", psnr_cell)):
            quoted = re.findall(r"\d+\.\d+", cell) or ([] if cell != "exact" else ["inf"])
            assert quoted, (label, cell)
            for number in quoted:
                decimals = len(number.split(".")[1]) if number != "inf" else 0
                values = method[column].round(decimals) if number != "inf" else method[column]
                assert np.isclose(values, float(number)).any(), (label, column, number)
