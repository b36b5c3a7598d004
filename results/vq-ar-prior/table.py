"""The VQ-VAE's two-part code under its factorised prior and under the PixelCNN prior, beside
the generic coders and the bits-back codes, from the committed results (nothing is re-run).

Writes `table.md` (bits per dimension on the binarized-MNIST test split) and `samples.png`
(index maps drawn from each prior, decoded by the same frozen VQ-VAE).

    OMP_NUM_THREADS=1 python results/vq-ar-prior/table.py
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.results import read_results  # noqa: E402
from vlae_models.checkpoint import load  # noqa: E402
from vlae_models.zoo import resolve  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
DIMS = 784
AR, FACTORISED = "zoo:vq-vae-ar-binarized-mnist", "zoo:vq-vae-binarized-mnist"


def bits_per_dim(nats: float) -> float:
    return nats / (DIMS * math.log(2))


def split_rows() -> list[dict]:
    """Stated code lengths on all 10 000 test images: each prior's rate + the distortion
    (the fixed-length code once: both models hold the same indices)."""
    factorised, pixelcnn = RESULTS / "binarized-mnist-lossless" / "vq-vae", HERE / "eval"
    rows = []
    for what, folder, kind in (("log2 128 bits an index", factorised, "fixed"),
                               ("factorised prior, stated", factorised, "prior"),
                               ("PixelCNN prior, stated", pixelcnn, "prior")):  # fmt: skip
        table = read_results([folder])
        row = table[table["rate_kind"] == kind].iloc[0]
        rows.append(_row(f"VQ-VAE, indices: {what}", row["rate_nats"], row["distortion_nats"],
                         int(row["n_examples"])))  # fmt: skip
    return rows


def coded_rows() -> list[dict]:
    """Real index streams, one per digit (bytes of the payload), + the stated distortion."""
    table = read_results([HERE / "codecs"])
    per_image = table[(table["image"] != "__all__") & (table["rate_kind"] == "coded")]
    rows = []
    for source, prior in ((FACTORISED, "factorised"), (AR, "PixelCNN")):
        mine = per_image[per_image["checkpoint"] == source]
        rows.append(_row(f"VQ-VAE, indices: {prior} prior, **coded** (one stream a digit)",
                         mine["rate_nats"].mean(), mine["distortion_nats"].mean(),
                         len(mine)))  # fmt: skip
    return rows


def _row(what: str, rate: float, distortion: float, n: int) -> dict:
    return {"code": what, "index bits/dim": bits_per_dim(rate),
            "+ distortion bits/dim": bits_per_dim(distortion),
            "total bits/dim": bits_per_dim(rate + distortion), "images": n}  # fmt: skip


def reference_rows() -> list[dict]:
    """Generic coders (real files) and the bits-back codes (real messages), as committed."""
    rows = []
    for folder, label in (("codecs-whole-split", "whole split as one image"),
                          ("codecs-per-image", "per image")):  # fmt: skip
        table = read_results([RESULTS / "binarized-mnist-lossless" / folder])
        agg = table[table["rate_kind"] == "coded"].groupby("method")["bits_per_dim"].mean()
        for method in ("lzma", "bz2", "gzip"):
            rows.append({"code": f"{method}, {label}", "total bits/dim": agg[method]})
    for model in ("beta-vae", "hvae", "vlae"):
        table = read_results([RESULTS / "bits-back-mnist" / model])
        coded = table[(table["image"] != "__all__") & (table["rate_kind"] == "coded")]
        rows.append({"code": f"bits-back (BB-ANS), {coded['method'].iloc[0].split()[-1]}",
                     "total bits/dim": bits_per_dim(coded["rate_nats"].mean()),
                     "images": len(coded)})  # fmt: skip
    return rows


def samples_figure(n: int = 32) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(9, 3.6))
    for ax, (ref, title) in zip(axes, ((FACTORISED, "factorised prior"),
                                       (AR, "PixelCNN prior")), strict=True):  # fmt: skip
        model, _ = load(resolve(ref))
        torch.manual_seed(0)
        with torch.no_grad():
            images = model.sample(n, mode="mean")[:, 0]
        grid = torch.cat([torch.cat(list(images[r * 16 : (r + 1) * 16]), 1) for r in range(2)])
        ax.imshow(grid.numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"VQ-VAE indices drawn from its {title}, decoded (means)", fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(HERE / f"samples.{suffix}", dpi=110)
    plt.close(fig)


def main() -> None:
    torch.set_num_threads(1)
    frame = pd.DataFrame(split_rows() + coded_rows() + reference_rows())
    frame = frame.sort_values("total bits/dim", ignore_index=True)
    text = frame.to_markdown(index=False, floatfmt=".4f").replace("nan", "")
    (HERE / "table.md").write_text(
        "# Two-part codes of the VQ-VAE's indices beside the lossless coders\n\n"
        "Binarized MNIST test split, bits per dimension (784 a digit). The distortion is the "
        "frozen VQ-VAE's -log p(x | indices), stated (no coder ran for it), the same for both "
        "priors. Written by `table.py` from the committed results.\n\n" + text + "\n"
    )  # fmt: skip
    samples_figure()
    print(text)


if __name__ == "__main__":
    main()
