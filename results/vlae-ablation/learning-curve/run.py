"""The VLAE's test NLL against training steps: one resumable run, continued stage by stage.

The run is the zoo VLAE's (`results/zoo`: `vlae-bench train vlae --dataset binarized-mnist
--set seed=1`, constant learning rate, so a longer --steps only continues it). After each
stage the EMA weights are scored by IWAE (k = K) on M test images spread over the split, a
fixed subset, and a row goes into curve.csv. The resumable state (the checkpoint compacted
by `vlae_models.checkpoint.write_compact`, the run record and the training log) is kept in
state/ beside this file, so the run continues on another machine from a clean clone:

    OMP_NUM_THREADS=1 python results/vlae-ablation/learning-curve/run.py --until 20000

Stages end at 250, 500, 1000, 2000, 3500, 5000, 7500, 10000, 15000, 20000, 30000, 50000,
75000 and 100000 steps. The working run folder (full checkpoints) is runs/vlae-curve.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from vlae_models.checkpoint import expand_compact, read_meta, write_compact

HERE = Path(__file__).resolve().parent
STATE = HERE / "state"
COMPACT = STATE / "compact.safetensors"  # the run's checkpoint, compacted
CURVE = HERE / "curve.csv"
STAGES = [250, 500, 1000, 2000, 3500, 5000, 7500, 10000, 15000, 20000, 30000, 50000, 75000,
          100000]  # fmt: skip
TRAIN = ["--dataset", "binarized-mnist", "--set", "seed=1", "--set", "checkpoint_every=250",
         "--set", "progress=false"]  # fmt: skip
KEPT = ("run.json", "train_log.jsonl")  # beside the compact checkpoint


def cli(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "vlae-bench"), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")


def restore(run: Path) -> None:
    """The run folder from state/, when it has no checkpoint of its own (another machine)."""
    if (run / "checkpoint.safetensors").exists() or not COMPACT.exists():
        return
    run.mkdir(parents=True, exist_ok=True)
    expand_compact(COMPACT, run / "checkpoint.safetensors")
    for name in KEPT:
        shutil.copy(STATE / name, run / name)


def keep(run: Path) -> None:
    STATE.mkdir(exist_ok=True)
    write_compact(run / "checkpoint.safetensors", COMPACT)
    for name in KEPT:
        shutil.copy(run / name, STATE / name)


def score(run: Path, step: int, k: int, images: int) -> dict:
    out = run / f"iwae-{step}"
    cli("eval", str(run / "checkpoint.safetensors"), "--dataset", "binarized-mnist",
        "--iw-samples", str(k), "--limit", str(images), "--no-progress", "--overwrite",
        "--out", str(out))  # fmt: skip
    rows = pd.read_parquet(out / "results.parquet")
    row = rows[rows["estimator"] == "iwae"].iloc[0]
    return {"step": step, "iwae_nll_nats": row["nll_nats"], "neg_elbo_nats": row["neg_elbo_nats"],
            "kl_nats": row["kl_nats"], "k": k, "images": images}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--until", type=int, required=True, help="Last stage's step count.")
    parser.add_argument("--run", type=Path, default=Path("runs/vlae-curve"))
    parser.add_argument("--k", type=int, default=100, help="IWAE samples an image.")
    parser.add_argument("--images", type=int, default=500, help="Spread test images scored.")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    restore(args.run)
    curve = pd.read_csv(CURVE) if CURVE.exists() else pd.DataFrame()
    done = set(curve["step"]) if len(curve) else set()
    for stage in [s for s in STAGES if s <= args.until and s not in done]:
        began = time.time()
        cli("train", "vlae", *TRAIN, "--steps", str(stage), "--out", str(args.run))
        assert read_meta(args.run / "checkpoint.safetensors")["step"] == stage
        trained = time.time() - began
        row = score(args.run, stage, args.k, args.images)
        row.update(train_s=round(trained, 1), score_s=round(time.time() - began - trained, 1))
        keep(args.run)
        curve = pd.concat([curve, pd.DataFrame([row])], ignore_index=True)
        curve.to_csv(CURVE, index=False)
        print(pd.DataFrame([row]).to_string(index=False, header=stage == min(STAGES)), flush=True)


if __name__ == "__main__":
    main()
