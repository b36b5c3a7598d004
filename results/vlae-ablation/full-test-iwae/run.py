"""The seed-1 VLAE's IWAE NLL (k = 1000) on the whole 10 000-image binarized MNIST test split.

Resumable: the split is cut into 20 contiguous shards of 500 images, each evaluated with
``evaluate(..., compile=True)`` and written to ``shard-NN.json`` when done; a rerun skips the
shards on disk and, once all are there, writes ``summary.json`` (the image-weighted mean).
``--from-end`` takes the shards last to first, so that a second process on another core meets
the first in the middle (a shard both reach is written twice with the same numbers: every
shard is seeded alike).

    export VLAE_BENCH_DATA=../shared/data OMP_NUM_THREADS=1
    python results/vlae-ablation/full-test-iwae/run.py

The weights are the zoo's ``vlae-binarized-mnist``: the ablation's ``vlae-s1`` run (same
command, seed and steps; its 500-image IWAE reproduces the arm's 82.15), stored in float16.
"""

import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.datasets import load_array
from vlae_models.checkpoint import load
from vlae_models.evaluate import evaluate
from vlae_models.files import atomic_write
from vlae_models.zoo import resolve

HERE = Path(__file__).parent
WEIGHTS, K, SHARD, SEED = "zoo:vlae-binarized-mnist", 1000, 500, 1


def main() -> None:
    torch.set_num_threads(1)
    model, _ = load(resolve(WEIGHTS))
    pixels = torch.from_numpy(load_array("binarized-mnist", "test")).unsqueeze(1)
    shards = range(0, len(pixels), SHARD)
    order = list(enumerate(shards))
    for i, start in reversed(order) if "--from-end" in sys.argv else order:
        path = HERE / f"shard-{i:02d}.json"
        if path.exists():
            continue
        began = time.perf_counter()
        (row,) = evaluate(
            model, pixels[start : start + SHARD], iw_samples=K, dataset="binarized-mnist",
            split="test", seed=SEED, mutual_info=False, compile=True,
        )  # fmt: skip
        row.update(first_image=start, wall_s=time.perf_counter() - began, weights=WEIGHTS)
        atomic_write(path, json.dumps(row, indent=1, sort_keys=True) + "\n")
        print(f"shard {i}: nll {row['nll_nats']:.3f} in {row['wall_s']:.0f} s", flush=True)
    rows = [json.loads((HERE / f"shard-{i:02d}.json").read_text()) for i in range(len(shards))]
    if not all(r["iw_samples"] == K for r in rows):
        raise SystemExit("a shard was evaluated with another k")
    n = sum(r["n_examples"] for r in rows)
    mean = {k: sum(r[k] * r["n_examples"] for r in rows) / n
            for k in ("nll_nats", "neg_elbo_nats", "kl_nats", "distortion_nats")}  # fmt: skip
    summary = {"weights": WEIGHTS, "iw_samples": K, "n_examples": n, **mean,
               "wall_s": sum(r["wall_s"] for r in rows), "command": " ".join(sys.argv)}  # fmt: skip
    atomic_write(HERE / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
