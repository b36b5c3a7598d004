"""What the report says beside its numbers: why a BD cell is empty, what an image set is,
how many images each bits/dim bar measured, that a VLAE's decoded image is a draw, and a
LaTeX document with its figures."""

from __future__ import annotations

import numpy as np

from benchmarks.report import render_report
from benchmarks.report.tables import bd_table, bits_rows, distinguishing_names, name_checkpoints
from benchmarks.results import aggregate, make_frame

RATES = {"jpeg": [0.3, 0.6, 1.0, 1.7], "mine": [0.25, 0.45, 0.8, 1.4]}
PSNRS = {"jpeg": [28.1, 30.6, 33.2, 36.4], "mine": [28.6, 31.2, 34.0, 37.1]}


def rows(side: int, extra: dict | None = None) -> list[dict]:
    """Two RD curves of one image of side x side; MS-SSIM NaN as the metric gives it under
    161 px."""
    out = []
    for method in RATES:
        for q, (rate, psnr) in enumerate(zip(RATES[method], PSNRS[method], strict=True)):
            out.append({"dataset": "d", "method": method, "param": "q", "value": q,
                        "rate_kind": "coded", "image": "i", "bpp": rate, "psnr": psnr,
                        "ms_ssim_db": np.nan if side < 161 else psnr / 2, "height": side,
                        "width": side, "channels": 3, **(extra or {})})  # fmt: skip
    return out


def test_an_empty_bd_cell_gives_its_true_reason():
    small = bd_table(aggregate(make_frame(rows(128))), "jpeg").iloc[0]
    assert small["BD-rate MS-SSIM [%]"] == "n/a (MS-SSIM needs images of at least 161 px a side)"
    assert isinstance(small["BD-rate PSNR [%]"], float)  # PSNR is defined: a number
    disjoint = make_frame(rows(512))
    disjoint.loc[disjoint["method"] == "mine", "psnr"] += 20  # no quality in common
    far = bd_table(aggregate(disjoint), "jpeg").iloc[0]
    assert "do not overlap" in far["BD-rate PSNR [%]"]  # the overlap reason where it is one


def test_the_report_explains_image_sets_draws_and_ships_its_figures_in_latex(tmp_path):
    frame = make_frame(rows(512, {"decoded_as": "mean"}))
    frame.loc[frame["method"] == "mine", "decoded_as"] = "draw"
    render_report(frame, tmp_path, latex=True)
    text = (tmp_path / "report.md").read_text()
    assert "Sections are per image set" in text
    assert "*mine: the decoded image is a draw from p(x | z)" in text and "*jpeg" not in text
    tex = (tmp_path / "report.tex").read_text()
    assert "\\includegraphics[width=0.9\\linewidth]{rd_psnr_d.png}" in tex
    assert tex.index("\\includegraphics") < tex.index("\\end{document}")


def test_every_bits_bar_says_how_many_images_and_which_beta():
    codes = aggregate(make_frame([
        {"dataset": "d", "method": "gzip", "param": "level", "value": 9, "rate_kind": "coded",
         "image": f"i{i}", "bpp": 1.0, "bits_per_dim": 1.0, "psnr": np.inf, "height": 28,
         "width": 28, "channels": 1} for i in range(3)
    ]))  # fmt: skip
    split = make_frame([
        {"dataset": "d", "method": "vlae", "param": "beta", "value": beta, "rate_kind": "kl",
         "image": "__all__", "estimator": "elbo", "bits_per_dim": bits, "n_examples": n}
        for beta, bits, n in ((0.5, 0.2, 1000), (1.0, 0.17, 500))
    ])  # fmt: skip
    labels = list(bits_rows(codes, split)["label"])
    assert labels == ["gzip (per image, 3 images)", "vlae (−ELBO, 1000 images, β=0.5)",
                      "vlae (−ELBO, 500 images, β=1)"]  # fmt: skip


def test_two_checkpoints_of_one_model_stay_two_rows_and_two_bars(tmp_path):
    """Two trainings of the VLAE in one report: their bars shared a label, and one of them
    was dropped from the bits/dim table without a word. A β sweep's rows (one checkpoint
    per β) keep their names; a sweep's seeds are told apart by their job folders."""
    sweep = "/x/sweep/{}/train/checkpoint.safetensors"
    split = make_frame([
        {"dataset": "d", "split": "test", "method": method, "param": "beta", "value": beta,
         "rate_kind": "kl", "image": "__all__", "estimator": "elbo", "bits_per_dim": bits,
         "n_examples": 500, "checkpoint": checkpoint, "rate_nats": 9.0 + bits,
         "distortion_nats": 75.0 - bits}
        for method, beta, checkpoint, bits in (
            ("vlae", 1.0, "zoo:vlae-binarized-mnist", 0.154),
            ("vlae", 1.0, "runs/vlae-long/checkpoint.safetensors", 0.150),
            ("vlae", 1.0, "runs/vlae-long/checkpoint.safetensors", 0.149),  # as its IWAE below
            ("vlae", 1.0, None, 0.152),
            ("hvae", 1.0, "zoo:hvae-binarized-mnist", 0.177),
            ("beta-vae", 0.5, sweep.format("beta-vae-b0.5-s1"), 0.20),
            ("beta-vae", 1.0, sweep.format("beta-vae-b1-s1"), 0.17),
            ("beta-vae", 1.0, sweep.format("beta-vae-b1-s2"), 0.18),
        )
    ])  # fmt: skip
    split.loc[2, ["estimator", "iw_samples"]] = ["iwae", 1000]
    named = name_checkpoints(split)
    assert list(named["checkpoint_name"].fillna("")) == [
        "vlae-binarized-mnist", "vlae-long", "vlae-long", "no checkpoint", "", "",
        "beta-vae-b1-s1", "beta-vae-b1-s2",
    ]  # fmt: skip
    bars = bits_rows(make_frame([]), named)
    assert list(bars["bits_per_dim"]) == list(split["bits_per_dim"])
    assert list(bars["label"])[4:] == [
        "hvae (−ELBO, 500 images)", "beta-vae (−ELBO, 500 images, β=0.5)",
        "beta-vae [beta-vae-b1-s1] (−ELBO, 500 images, β=1)",
        "beta-vae [beta-vae-b1-s2] (−ELBO, 500 images, β=1)",
    ]  # fmt: skip
    render_report(split, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| vlae     | vlae-long      " in text and "| hvae     |                " in text


def test_checkpoints_no_short_name_tells_apart_keep_their_references():
    refs = ["a/run/checkpoint.safetensors", "b/run/checkpoint.safetensors", "zoo:run"]
    assert distinguishing_names(refs) == {refs[0]: "a", refs[1]: "b", "zoo:run": "run"}
    clash = ["zoo:a", "x/a/checkpoint.safetensors"]
    assert distinguishing_names(clash) == {r: r for r in clash}
