"""What each level of the hierarchical VLAE keeps: the level grids and their numbers.

For test digits spread over the (digit-sorted) split, the model redraws parts of its code
(``HierarchicalVLAE.redraw``): it keeps some levels at the digit's posterior means, draws the
other levels from their priors given the levels above, and then draws the pixels.

    keep both levels     -> only the PixelCNN's draw varies (what the decoder adds)
    keep level 0 (top)   -> the lower level and the pixels are redrawn
    keep level 1 (lower) -> the top level and the pixels are redrawn

`level_grids.png` shows six digits under each condition; `level_keeps.csv` measures it on
200 digits x 4 draws: the fraction of pixels that differ from the digit (Hamming), and the
fraction of draws that a logistic-regression classifier (fitted on MNIST's training images)
puts in the digit's own class. The zoo VLAE's "keep z" (pixels redrawn) is the reference row.

    OMP_NUM_THREADS=1 python results/hierarchical-vlae/figures.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.datasets import load_array, load_items, load_labels  # noqa: E402
from vlae_models.checkpoint import load  # noqa: E402
from vlae_models.zoo import resolve  # noqa: E402

HERE = Path(__file__).resolve().parent
CONDITIONS = {  # label -> levels kept
    "keep both levels: pixels redrawn": [0, 1],
    "keep level 0 (top): level 1 + pixels redrawn": [0],
    "keep level 1: level 0 (top) + pixels redrawn": [1],
    "keep nothing: a sample": [],
}


def digits(n: int) -> tuple[torch.Tensor, np.ndarray]:
    """n test digits spread evenly over the split, as model input, with their labels."""
    items = load_items("binarized-mnist", split="test")
    picks = np.linspace(0, len(items) - 1, n).round().astype(int)
    pixels = np.stack([items[i].pixels for i in picks])
    return torch.from_numpy(pixels)[:, None].float(), test_labels()[picks]


def test_labels() -> np.ndarray:
    """binarized-mnist ships no labels; its test image k is a draw from MNIST's test image
    argsort(labels, stable)[k] (the data's SOURCE.md), so its labels are MNIST's, sorted."""
    return np.sort(load_labels("mnist", "test"), kind="stable")


def classifier():
    """A multinomial logistic regression on MNIST's 60 000 training images / 255 (the
    binarized digits are Bernoulli draws of those intensities)."""
    from sklearn.linear_model import LogisticRegression

    x = load_array("mnist", "trainval")
    x = x.reshape(len(x), -1).astype(np.float64) / 255.0
    return LogisticRegression(max_iter=200).fit(x, load_labels("mnist", "trainval"))


def draw(model, x: torch.Tensor, keep: list[int], seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return model.redraw(x, keep=keep, mode="sample")


def grid_figure(model, x: torch.Tensor, n_draws: int, out: Path) -> None:
    fig, axes = plt.subplots(1, len(CONDITIONS), figsize=(4.2 * len(CONDITIONS), 4.6))
    for ax, (label, keep) in zip(axes, CONDITIONS.items(), strict=True):
        drawn = draw(model, x.repeat_interleave(n_draws, 0), keep, 0).view(len(x), n_draws, 28, 28)
        rows = [torch.cat([x[i, 0], *drawn[i]], 1) for i in range(len(x))]
        ax.imshow(torch.cat(rows, 0).numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.axvline(27.5, color="tab:red", lw=1)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Hierarchical VLAE: each test digit (left of the red line), then draws that "
                 "keep part of its code", fontsize=11)  # fmt: skip
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out.with_suffix(f".{suffix}"), dpi=110)
    plt.close(fig)


def keeps_table(model, vlae, judge, n: int, n_draws: int) -> pd.DataFrame:
    x, y = digits(n)
    flat = x.flatten(1).numpy()

    def scores(condition: str, drawn: list[torch.Tensor]) -> dict:
        hamming = np.mean([(d.flatten(1).numpy() != flat).mean() for d in drawn])
        same = np.mean([_classify(d, judge) == y for d in drawn])
        return {"condition": condition, "pixels_differing": hamming, "same_class": same}

    rows = [scores("the digits themselves (the classifier's accuracy)", [x])]
    for label, keep in CONDITIONS.items():
        rows.append(scores(f"hierarchical VLAE, {label}",
                           [draw(model, x, keep, s) for s in range(n_draws)]))  # fmt: skip
    drawn = []
    for s in range(n_draws):
        torch.manual_seed(s)
        pixels, _ = vlae.decode(vlae.encode(x)[0])
        drawn.append(pixels)
    rows.append(scores("VLAE (zoo), keep z: pixels redrawn", drawn))
    return pd.DataFrame(rows)


def _classify(x: torch.Tensor, model) -> np.ndarray:
    return model.predict(x.flatten(1).numpy().astype(np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="zoo:hierarchical-vlae-binarized-mnist")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--draws", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _ = load(resolve(args.checkpoint))
    vlae, _ = load(resolve("zoo:vlae-binarized-mnist"))
    with torch.no_grad():
        x, _ = digits(6)
        grid_figure(model, x, 6, HERE / "level_grids")
        table = keeps_table(model, vlae, classifier(), args.images, args.draws)
    table.to_csv(HERE / "level_keeps.csv", index=False, float_format="%.4f")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
