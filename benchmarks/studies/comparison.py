"""Paper-style comparisons: each arm of a spec, our measurements beside the paper's numbers.

A spec (``benchmarks/specs/*.toml``) names the arms, their seeds, the paper's values per
dataset and the orderings the paper leads one to expect. The evaluations of one (arm, seed)
live in ``RESULTS/<arm>-s<seed>/``: every ``results.parquet`` below that folder is read
(``run.sh`` of an ablation writes ``elbo/``, the whole test split, and ``iwae/``, the
importance-weighted NLL on a subset), and ``train/run.json``, when present, gives the
training steps and wall time.

    vlae-bench compare benchmarks/specs/vlae_mnist.toml --results results/vlae-ablation \\
        --dataset binarized-mnist

Expectations are checked, never enforced: the report says which hold and which do not.
"""

from __future__ import annotations

import json
import operator
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.errors import BenchError
from benchmarks.report.format import markdown_table
from benchmarks.report.plots import (
    arm_comparison_figure,
    draws_figure,
    save_figure,
    training_figure,
)
from benchmarks.results import PARQUET, load_runs, read_results
from benchmarks.runs.spec import Arm, Spec
from benchmarks.runs.spec import load_spec as read_spec
from vlae_models.files import atomic_write
from vlae_models.train import LOG_NAME

METRICS = ("nll", "kl", "distortion", "neg_elbo")
_OPS = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_EXPECTATION = re.compile(r"^\s*(\S+)\s*(<=|>=|<|>)\s*(\S+)\s*$")


def load_spec(path: Path) -> Spec:
    """Read and check a comparison spec (``benchmarks.runs.spec``), its expectations included."""
    spec = read_spec(path)
    for text in spec.expectations.checks:
        _parse_expectation(text, spec)
    return spec


# --- our numbers ---------------------------------------------------------------------------


def seed_results(spec: Spec, root: Path, dataset: str) -> pd.DataFrame:
    """One row per (arm, seed) that has results under ``root``: NLL, KL, distortion, -ELBO.

    Only continuous-latent rows (``rate_kind="kl"``) are read. KL, distortion and -ELBO come
    from the evaluation over the most examples (the whole split); NLL is the best estimate
    made: the exact likelihood, else the IWAE bound with the most samples, else the negative
    ELBO. ``nll_estimator`` and ``nll_examples`` say which.
    """
    root = Path(root)
    if not root.is_dir():
        raise BenchError(f"no results folder {root}")
    rows = []
    for arm in spec.arms:
        for seed in arm.seeds:
            folder = root / f"{arm.name}-s{seed}"
            files = sorted(folder.rglob(PARQUET)) if folder.is_dir() else []
            if not files:
                continue
            frame = read_results(files)
            frame = frame[
                (frame["dataset"] == dataset)
                & (frame["split"] == spec.split)
                & (frame["rate_kind"] == "kl")
            ]
            if frame.empty:
                continue
            rows.append({"arm": arm.name, "seed": seed, **_one_seed(frame), **_training(folder)})
    return pd.DataFrame(rows, columns=_SEED_COLUMNS)


_SEED_COLUMNS = [
    "arm", "seed", "nll", "nll_estimator", "nll_examples", "neg_elbo", "kl", "distortion",
    "examples", "iwae_gap", "active_units", "train_steps", "train_wall_s",
]  # fmt: skip


def _one_seed(frame: pd.DataFrame) -> dict[str, Any]:
    full = frame.loc[frame["n_examples"].astype(float).idxmax()]
    rank = frame["estimator"].map({"exact": 2, "iwae": 1}).fillna(0)
    k = frame["iw_samples"].astype(float).fillna(0) if "iw_samples" in frame else 0.0
    best = frame.loc[(rank * 1e12 + k * 1e6 + frame["n_examples"].astype(float)).idxmax()]
    estimator = best["estimator"]
    if estimator == "iwae":
        estimator = f"iwae k={int(best['iw_samples'])}"
        gap = float(best["neg_elbo_nats"]) - float(best["nll_nats"])
    else:
        gap = np.nan
    neg_elbo = full.get("neg_elbo_nats")
    if pd.isna(neg_elbo):  # a model without latents has no ELBO of its own: its NLL is exact
        neg_elbo = full["nll_nats"]
    return {
        "nll": float(best["nll_nats"]),
        "nll_estimator": estimator,
        "nll_examples": int(best["n_examples"]),
        "neg_elbo": float(neg_elbo),
        "kl": float(full["rate_nats"]),
        "distortion": float(full["distortion_nats"]),
        "examples": int(full["n_examples"]),
        "iwae_gap": gap,
        "active_units": float(full["active_units"]) if "active_units" in full else np.nan,
    }


def _training(folder: Path) -> dict[str, Any]:
    runs = load_runs([folder / "train"])
    if not runs:
        return {"train_steps": np.nan, "train_wall_s": np.nan}
    run = runs[0]
    steps = run.get("train_config", {}).get("steps")
    wall = run.get("wall_s")  # this session, plus any it resumed from
    total = wall + run.get("earlier_wall_s", 0.0) if wall is not None else None
    return {"train_steps": steps, "train_wall_s": total}


# --- side by side --------------------------------------------------------------------------


def comparison_table(spec: Spec, per_seed: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per arm: our mean (and spread over seeds) beside the paper's values.

    Where the paper has no number for ``dataset`` but has one for another dataset (the VLAE
    paper's ablation is on dynamically binarized MNIST), that one is shown and
    ``paper_dataset`` names it.
    """
    rows = []
    for arm in spec.arms:
        mine = per_seed[per_seed["arm"] == arm.name]
        paper_dataset, paper = _paper_values(arm, dataset)
        row: dict[str, Any] = {"arm": arm.name, "label": arm.title, "seeds": len(mine)}
        for metric in METRICS:
            values = mine[metric].astype(float)
            row[metric] = values.mean() if len(values) else np.nan
        row["nll_sd"] = mine["nll"].astype(float).std(ddof=1) if len(mine) > 1 else np.nan
        row["nll_estimator"] = ", ".join(sorted(set(mine["nll_estimator"])))
        row["paper_nll"] = paper.get("nll", np.nan)
        row["paper_kl"] = paper.get("kl", np.nan)
        row["paper_dataset"] = paper_dataset
        row["nll_minus_paper"] = row["nll"] - row["paper_nll"]
        row["train_wall_min"] = mine["train_wall_s"].astype(float).mean() / 60.0
        rows.append(row)
    return pd.DataFrame(rows)


def _paper_values(arm: Arm, dataset: str) -> tuple[str | None, dict[str, Any]]:
    if dataset in arm.paper:
        return dataset, arm.paper[dataset]
    return next(iter(arm.paper.items()), (None, {}))


def check_expectations(spec: Spec, table: pd.DataFrame) -> pd.DataFrame:
    """Each expectation of the spec with both sides' values and whether it holds (None: an
    arm has no results yet)."""
    by_arm = table.set_index("arm")
    rows = []
    for text in spec.expectations.checks:
        left, op, right = _parse_expectation(text, spec)
        lhs, rhs = (
            side if isinstance(side, float) else float(by_arm.loc[side[0], side[1]])
            for side in (left, right)
        )
        holds = None if np.isnan(lhs) or np.isnan(rhs) else bool(_OPS[op](lhs, rhs))
        rows.append({"expectation": text, "left": lhs, "right": rhs, "holds": holds})
    return pd.DataFrame(rows, columns=["expectation", "left", "right", "holds"])


def _parse_expectation(text: str, spec: Spec) -> tuple[Any, str, Any]:
    """'ARM.METRIC OP ARM.METRIC' or 'ARM.METRIC OP NUMBER' -> (left, op, right)."""
    match = _EXPECTATION.match(text)
    if not match:
        raise BenchError(f"expectation {text!r}: write 'ARM.METRIC < ARM.METRIC' or '< NUMBER'")
    left, op, right = match.groups()
    names = {a.name for a in spec.arms}

    def side(term: str, number_ok: bool) -> Any:
        if number_ok:
            try:
                return float(term)
            except ValueError:
                pass
        arm, _, metric = term.rpartition(".")
        if arm not in names or metric not in METRICS:
            raise BenchError(
                f"expectation {text!r}: {term!r} is not ARM.METRIC"
                f" (arms {sorted(names)}, metrics {list(METRICS)})"
            )
        return arm, metric

    return side(left, False), op, side(right, True)


# --- report --------------------------------------------------------------------------------

TABLE_COLUMNS = {
    "label": "arm", "seeds": "seeds", "nll": "NLL (ours)", "nll_sd": "sd over seeds",
    "nll_estimator": "NLL estimator",
    "paper_nll": "NLL (paper)", "nll_minus_paper": "ours − paper", "kl": "KL (ours)",
    "paper_kl": "KL (paper)", "distortion": "distortion", "neg_elbo": "−ELBO",
    "paper_dataset": "paper's data", "train_wall_min": "train [min]",
}  # fmt: skip
SEED_COLUMNS = {
    "arm": "arm", "seed": "seed", "nll": "NLL", "nll_estimator": "estimator",
    "nll_examples": "NLL images", "neg_elbo": "−ELBO", "kl": "KL", "distortion": "distortion",
    "examples": "ELBO images", "iwae_gap": "−ELBO − IWAE", "active_units": "active units",
    "train_steps": "steps", "train_wall_s": "train [s]",
}  # fmt: skip


def write_comparison(spec_path: Path, results: Path, dataset: str, out: Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison_seeds.csv`` and the figure into ``out``."""
    spec = load_spec(spec_path)
    per_seed = seed_results(spec, results, dataset)
    if per_seed.empty:
        raise BenchError(f"no results for any arm of {spec.name} on {dataset} under {results}")
    table = comparison_table(spec, per_seed, dataset)
    checks = check_expectations(spec, table)
    out.mkdir(parents=True, exist_ok=True)
    ran = set(zip(per_seed["arm"], per_seed["seed"], strict=True))
    order = [a.name for a in spec.arms if a.name in set(per_seed["arm"])]
    figure = save_figure(arm_comparison_figure(table, per_seed, order, dataset), out / "comparison")
    logs = training_logs(spec, Path(results))
    if not logs.empty:
        figure += save_figure(training_figure(logs, order), out / "training")
    draws = draw_grids(spec, Path(results), f"draws_{dataset}_{spec.split}.png")
    if draws:
        figure += save_figure(draws_figure(draws), out / "what_z_keeps")
    missing = [f"{a.name}-s{s}" for a in spec.arms for s in a.seeds if (a.name, s) not in ran]
    md = [
        f"# {spec.title or spec.name}: {dataset}, {spec.split} split",
        "",
        f"Paper: {spec.paper}. Nats per image. NLL (ours): "
        + "; ".join(sorted(set(per_seed["nll_estimator"])))
        + "; KL, distortion and −ELBO over the whole split.",
        "",
        *(f"![{path.stem}]({path.name})" for path in figure if path.suffix == ".png"),
        "",
        markdown_table(table[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)),
    ]
    if spec.references.get(dataset):
        refs = ", ".join(f"{k} {v}" for k, v in spec.references[dataset].items())
        md += ["", f"Reference NLLs the paper reports for {dataset}: {refs}."]
    if not checks.empty:
        shown = checks.assign(
            holds=checks["holds"].map({True: "yes", False: "**no**", None: "not run"})
        )
        md += ["", "## Expected orderings (checked, not forced)", "", markdown_table(shown)]
    md += ["", "## Every seed", "", markdown_table(per_seed.rename(columns=SEED_COLUMNS))]
    if missing:
        md += ["", f"Not run yet: {', '.join(missing)}."]
    report, seeds_csv = out / "comparison.md", out / "comparison_seeds.csv"
    atomic_write(report, "\n".join(md) + "\n")
    atomic_write(seeds_csv, lambda p: per_seed.to_csv(p, index=False))
    return [report, seeds_csv, *figure]


def training_logs(spec: Spec, root: Path) -> pd.DataFrame:
    """The training loss logs (``<arm>-s<seed>/train/train_log.jsonl``) as one long table:
    arm, seed, step, rate and distortion (training-batch means, nats)."""
    frames = []
    for arm in spec.arms:
        for seed in arm.seeds:
            path = root / f"{arm.name}-s{seed}" / "train" / LOG_NAME
            if not path.exists():
                continue
            try:
                records = [json.loads(line) for line in path.read_text().splitlines() if line]
            except json.JSONDecodeError as err:
                raise BenchError(f"{path} is not a JSON-lines log: {err}") from err
            log = pd.DataFrame([r for r in records if "rate" in r])
            if not log.empty:
                frames.append(log[["step", "rate", "distortion"]].assign(arm=arm.name, seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def draw_grids(spec: Spec, root: Path, name: str) -> dict[str, Path]:
    """{arm label: its first seed's decoder-draws grid} for arms whose evaluation wrote one
    (see :func:`vlae_models.evaluate.decoder_draws`)."""
    grids = {}
    for arm in spec.arms:
        for seed in arm.seeds:
            found = sorted((root / f"{arm.name}-s{seed}").rglob(name))
            if found:
                grids[f"{arm.title} (seed {seed})"] = found[0]
                break
    return grids
