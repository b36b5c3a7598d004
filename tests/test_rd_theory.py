"""Rate–distortion bounds against closed forms, and trained points above them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from benchmarks.analysis import rd_bounds as rd
from benchmarks.errors import BenchError
from benchmarks.studies import rd_experiments as rde


def test_reverse_water_filling():
    # one dimension: R = 1/2 log(s^2 / D)
    assert rd.gaussian_rd([2.0], 0.5) == pytest.approx(0.5 * math.log(4.0))
    # equal variances share D equally
    assert rd.gaussian_rd([1.0] * 4, 1.0) == pytest.approx(2 * math.log(4.0))
    # a small variance below the water level gets no rate: D_3 = s_3^2
    v = [4.0, 1.0, 0.01]
    theta = rd.water_level(v, 2.01)
    assert theta == pytest.approx(1.0)
    assert rd.gaussian_rd(v, 2.01) == pytest.approx(0.5 * math.log(4.0))
    assert rd.gaussian_rd(v, sum(v)) == 0.0
    for rate in (0.1, 1.0, 5.0):
        assert rd.gaussian_rd(v, rd.gaussian_dr(v, rate)) == pytest.approx(rate, rel=1e-9)
    with pytest.raises(BenchError, match="positive"):
        rd.gaussian_rd([1.0, -1.0], 0.5)


@pytest.mark.parametrize("p", [0.5, 0.2, 0.03])
def test_blahut_arimoto_matches_the_bernoulli_closed_form(p):
    for slope in (-0.3, -2.0, -8.0, -30.0):
        point = rd.blahut_arimoto([1 - p, p], rd.hamming(2), slope)
        assert point.rate == pytest.approx(rd.bernoulli_rd(p, point.distortion), abs=1e-9)


def test_blahut_arimoto_on_a_small_alphabet():
    for slope in (-1.0, -4.0):
        point = rd.blahut_arimoto([1 / 3] * 3, rd.hamming(3), slope)
        assert point.rate == pytest.approx(rd.uniform_hamming_rd(3, point.distortion), abs=1e-9)
    source = [0.6, 0.3, 0.1]  # no closed form: its curve ends at H(p) and at D = 1 - max p
    entropy = -sum(q * math.log(q) for q in source)
    sharp = rd.blahut_arimoto(source, rd.hamming(3), -60.0)
    assert sharp.distortion < 1e-12 and sharp.rate == pytest.approx(entropy, abs=1e-9)
    flat = rd.blahut_arimoto(source, rd.hamming(3), -0.01)
    assert flat.rate < 1e-6 and flat.distortion == pytest.approx(0.4, abs=1e-3)
    curve = rd.blahut_arimoto_curve(source, rd.hamming(3), -np.geomspace(0.1, 20, 15))
    rates = [pt.rate for pt in sorted(curve, key=lambda pt: pt.distortion)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))  # decreasing in D


def test_linear_vae_points_lie_above_the_gaussian_bound():
    settings = rde.SweepSettings((0.2, 1.0), steps=400, train_size=8000, test_size=8000)
    table = rde.gaussian_sweep(variances=(2.0, 1.0, 0.5, 0.25), settings=settings)
    # R = KL >= I(x; z) >= R(D): up to the held-out estimate's noise
    assert (table["gap_nats"] > -0.02).all()
    assert (table["rate_nats"].diff().dropna() < 0).all()  # more β, less rate


def test_bernoulli_points_lie_above_the_blahut_arimoto_bound():
    settings = rde.SweepSettings((0.3, 2.0), steps=300, train_size=8000, test_size=8000)
    table = rde.bernoulli_sweep(p=0.2, bits=8, settings=settings)
    assert (table["gap_nats"] > -0.02).all()
    # the tangent envelope of the Blahut–Arimoto points is a bound: below the exact curve, close
    assert (table["bound_nats"] <= table["closed_form_bound_nats"] + 1e-9).all()
    assert np.allclose(table["bound_nats"], table["closed_form_bound_nats"], atol=0.02)


def test_cli_writes_tables_and_refuses_a_used_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VLAE_BENCH_DATA", str(tmp_path / "no-data"))
    out = tmp_path / "rd"
    code, stdout, err = run_cli(monkeypatch, capsys, "rd-theory", "--out", str(out))
    assert code == 0, err
    assert "uniform(3)" in stdout and "zoo I(x;z) skipped" in err
    assert (out / "blahut_arimoto.png").is_file()
    assert pd.read_csv(out / "ba_check.csv")["abs_error_nats"].max() < 1e-9
    code, _, err = run_cli(monkeypatch, capsys, "rd-theory", "--out", str(out))
    assert code != 0 and "not empty" in err
    code, _, err = run_cli(monkeypatch, capsys, "rd-theory", "--out", str(tmp_path / "b"),
                           "--beta-sweep", str(tmp_path / "missing"))  # fmt: skip
    assert code != 0 and "no results at" in err and len(err.strip().splitlines()) == 1


def test_the_spec_runs_experiment_arms_and_draws_their_bounds(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    spec = Path(__file__).parents[1] / "benchmarks" / "specs" / "rd_theory.toml"
    out = tmp_path / "sweep"
    code, _, err = run_cli(monkeypatch, capsys, "sweep", str(spec), "--profile", "smoke",
                           "-j", "1", "--out", str(out))  # fmt: skip
    assert code == 0, err
    rows = pd.read_parquet(out / "results.parquet")
    assert set(rows["arm"]) == {"gaussian", "bernoulli"} and len(rows) == 4
    gaussian = rows[rows["arm"] == "gaussian"]
    expected = [rd.gaussian_rd(rde.GAUSSIAN_VARIANCES, d) for d in gaussian["distortion"]]
    assert np.allclose(gaussian["bound_nats"], expected)
    assert "trained points against R(D)" in (out / "report.md").read_text()
    assert (out / "rd_theory_gaussian-source.png").is_file()


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ('experiment = "nope"', "unknown experiment 'nope'"),
        ('experiment = "gaussian"\ngrid = { width = [1] }', "not a field of experiment settings"),
        ('experiment = "gaussian"\nmodel = "beta-vae"', "exactly one of"),
    ],
)
def test_experiment_arms_are_validated(tmp_path, arm, message):
    from benchmarks.runs.spec import load_spec

    path = tmp_path / "spec.toml"
    path.write_text(f'[spec]\nname = "x"\n[data]\ndatasets = ["synthetic"]\n'
                    f'[[arms]]\nname = "a"\n{arm}\n')  # fmt: skip
    with pytest.raises(BenchError, match=message):
        load_spec(path)
