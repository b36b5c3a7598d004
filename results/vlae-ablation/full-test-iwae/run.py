"""A VLAE's IWAE NLL (k = 1000) on the whole 10 000-image binarized MNIST test split.

Resumable: the split is cut into 20 contiguous shards of 500 images, each evaluated with
``evaluate(..., compile=True)`` and written to ``OUT/shard-NN.json`` when done; a rerun skips
the shards on disk and, once all are there, writes ``OUT/summary.json`` (the image-weighted
mean, with the weights file's digest) and, for a ``zoo:NAME``, records it in the zoo index
as ``test/10000/iwae``. Shards of other weights (by name, and by digest where a shard has
one: those of 2026-12-06 and before do not) or another k are refused.
``--from-end`` takes the shards last to first, so that a second process on another core meets
the first in the middle (a shard both reach is written twice with the same numbers: every
shard is seeded alike).

    export VLAE_BENCH_DATA=../shared/data OMP_NUM_THREADS=1
    python results/vlae-ablation/full-test-iwae/run.py       # and on a second core, --from-end
    python results/vlae-ablation/full-test-iwae/run.py --weights zoo:vlae-binarized-mnist-10k \\
        --out results/vlae-ablation/full-test-iwae/vlae-binarized-mnist-10k

The default weights are the zoo's ``vlae-binarized-mnist``: the ablation's ``vlae-s1`` run
(same command, seed and steps; its 500-image IWAE reproduces the arm's 82.15), stored in
float16; their shards are the ones beside this file.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.datasets import load_array
from vlae_models import zoo
from vlae_models.checkpoint import load
from vlae_models.core import ModelError
from vlae_models.evaluate import evaluate
from vlae_models.files import atomic_write

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # the repository, which the summary's command is relative to
K, SHARD, SEED = 1000, 500, 1
MEANS = ("nll_nats", "neg_elbo_nats", "kl_nats", "rate_nats", "distortion_nats", "bits_per_dim")


def check_shards(out: Path, weights: str) -> None:
    """Refuse a folder whose shards came from other weights (by name, and by the weights
    file's digest where a shard recorded one) or another k, before hours are spent on it."""
    digest = zoo.weights_digest(weights)
    for path in sorted(out.glob("shard-*.json")):
        row = json.loads(path.read_text())
        if row["iw_samples"] != K or row["weights"] != weights:
            raise SystemExit(f"{path} was evaluated with k={row['iw_samples']} of "
                             f"{row['weights']}, not k={K} of {weights}")  # fmt: skip
        if row.get("weights_digest", digest) != digest:
            raise SystemExit(f"{path} was evaluated with other weights named {weights}")


def evaluate_shards(weights: str, pixels: torch.Tensor, out: Path, from_end: bool) -> None:
    model, _ = load(zoo.resolve(weights))
    order = list(enumerate(range(0, len(pixels), SHARD)))
    for i, start in reversed(order) if from_end else order:
        path = out / f"shard-{i:02d}.json"
        if path.exists():
            continue
        began = time.perf_counter()
        (row,) = evaluate(
            model, pixels[start : start + SHARD], iw_samples=K, dataset="binarized-mnist",
            split="test", seed=SEED, mutual_info=False, compile=True,
        )  # fmt: skip
        row.update(first_image=start, wall_s=time.perf_counter() - began, weights=weights,
                   weights_digest=zoo.weights_digest(weights))  # fmt: skip
        atomic_write(path, json.dumps(row, indent=1, sort_keys=True) + "\n")
        print(f"shard {i}: nll {row['nll_nats']:.3f} in {row['wall_s']:.0f} s", flush=True)


def summarize(weights: str, out: Path, shards: int) -> dict | None:
    paths = [out / f"shard-{i:02d}.json" for i in range(shards)]
    if not all(p.exists() for p in paths):
        return None  # the other process is still on its last shard
    check_shards(out, weights)
    rows = [json.loads(p.read_text()) for p in paths]
    n = sum(r["n_examples"] for r in rows)
    mean = {k: sum(r[k] * r["n_examples"] for r in rows) / n for k in MEANS}
    command = f"python {shown(Path(__file__))} --weights {weights} --out {shown(out)}"
    summary = {"weights": weights, "weights_digest": zoo.weights_digest(weights), "iw_samples": K,
               "n_examples": n, **mean, "wall_s": sum(r["wall_s"] for r in rows),
               "command": command}  # fmt: skip
    atomic_write(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def shown(path: Path) -> Path:
    """A path relative to the repository where it lies inside it."""
    path = path.resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def record_in_zoo(name: str, summary: dict) -> None:
    numbers = {k: summary[k] for k in ("n_examples", "iw_samples", *MEANS)}
    zoo.set_reference(name, {f"test/{summary['n_examples']}/iwae": numbers})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="zoo:vlae-binarized-mnist")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--from-end", action="store_true", help="Shards last to first.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        check_shards(args.out, args.weights)  # and an unknown or missing weights file
    except ModelError as err:
        raise SystemExit(str(err)) from None
    pixels = torch.from_numpy(load_array("binarized-mnist", "test")).unsqueeze(1)
    evaluate_shards(args.weights, pixels, args.out, args.from_end)
    summary = summarize(args.weights, args.out, shards=len(range(0, len(pixels), SHARD)))
    if summary is None:
        return
    if args.weights.startswith("zoo:"):
        record_in_zoo(args.weights.removeprefix("zoo:"), summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
