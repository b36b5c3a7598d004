"""Memory and time per megapixel of `vlae-bench codecs -c jpeg -c png --quality 50
--workers 1` on generated gray images from 1 to 64 megapixels, beside Kodak.

Each run is its own process under /usr/bin/time; its peak resident memory minus that of the
same command on a 64 x 64 image (the libraries' own memory) is what the image cost. Gray
images are expanded to RGB when loaded: the raw bytes are H x W x 3.

    python results/large-images/run.py [--code-root DIR]   # DIR: another checkout (before)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent
SIDES = (1000, 2000, 4000, 8000)


def make(folder: Path, side: int) -> Path:
    """A photo-like gray image: Kodak's kodim05 resized, with a little noise."""
    data = Path(os.environ.get("VLAE_BENCH_DATA", HERE.parents[2] / "shared" / "data"))
    gray = (
        Image.open(data / "kodak" / "kodim05.png").convert("L").resize((side, side), Image.BICUBIC)
    )
    rng = np.random.default_rng(side)
    pixels = np.asarray(gray).astype(np.int16) + rng.integers(-3, 4, (side, side))
    target = folder / f"side{side}"
    target.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(target / "image.png")
    return target


def measure(dataset: str, out: Path, code_root: Path | None) -> tuple[float, float, float]:
    """(peak resident MB, wall seconds of the evaluation, seconds coding) of one run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "benchmarks", "codecs", "--dataset",
               dataset, "-c", "jpeg", "-c", "png", "--quality", "50", "--workers", "1",
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=code_root or HERE.parents[1])  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    seconds = float(re.search(r"rows, ([\d.]+) s ->", done.stdout)[1])
    rows = pd.read_parquet(out / "results.parquet")
    return peak_kb / 1024, seconds, float((rows["enc_s"] + rows["dec_s"]).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code-root", type=Path, default=None)
    parser.add_argument("--sides", default=",".join(map(str, SIDES)))
    parser.add_argument("--out", type=Path, default=HERE / "memory_per_megapixel.csv")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_mb, _, _ = measure(f"folder:{make(tmp, 64)}", tmp / "base", args.code_root)
        cases = [("kodak (24 images)", "kodak", 24 * 512 * 768)]
        cases += [(f"{s} x {s} gray", f"folder:{make(tmp, s)}", s * s)
                  for s in map(int, args.sides.split(","))]  # fmt: skip
        for name, dataset, pixels in cases:
            peak_mb, seconds, coding_s = measure(dataset, tmp / name.split()[0], args.code_root)
            per_image_raw = (pixels if dataset != "kodak" else 512 * 768) * 3 / 2**20
            rows.append({
                "images": name, "megapixels": pixels / 1e6, "peak_rss_mb": round(peak_mb),
                "above_libraries_mb": round(peak_mb - base_mb),
                "raw_rgb_mb_per_image": round(per_image_raw, 1),
                "above_per_raw": round((peak_mb - base_mb) / per_image_raw, 2),
                "seconds": round(seconds, 1), "s_per_megapixel": round(seconds / pixels * 1e6, 2),
                "coding_s_per_megapixel": round(coding_s / pixels * 1e6, 2),
            })  # fmt: skip
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
