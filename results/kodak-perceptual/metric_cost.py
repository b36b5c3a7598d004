"""Seconds each metric costs per Kodak image at one thread: the original's share (prepare,
once per original) and one reconstruction's (score), on kodim01..kodim04 against JPEG q=30.

    python results/kodak-perceptual/metric_cost.py > results/kodak-perceptual/metric_cost.md
"""

import io
import time

import numpy as np
import torch
from PIL import Image

from benchmarks import load_items
from benchmarks.metrics import METRICS

NAMES = ("psnr", "ssim", "lpips-alex", "lpips-vgg", "dists", "vifp", "fsim", "iw-ssim", "gmsd",
         "ms-gmsd", "haarpsi")  # fmt: skip


def jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=30)
    return np.asarray(Image.open(buffer))


def main() -> None:
    torch.set_num_threads(1)
    items = load_items("kodak", limit=4)
    pairs = [(item.pixels, jpeg(item.pixels)) for item in items]
    print("| metric | prepare (s, once per original) | score (s, per reconstruction) |")
    print("|---|---|---|")
    for name in NAMES:
        metric = METRICS[name]()
        metric.score(metric.prepare(pairs[0][0]), pairs[0][1])  # warm: networks built, loaded
        prepare, score = [], []
        for original, decoded in pairs:
            start = time.perf_counter()
            prepared = metric.prepare(original)
            prepare.append(time.perf_counter() - start)
            start = time.perf_counter()
            metric.score(prepared, decoded)
            score.append(time.perf_counter() - start)
        print(f"| {name} | {np.median(prepare):.3f} | {np.median(score):.3f} |")


if __name__ == "__main__":
    main()
