"""The hierarchical VLAE beside the VLAE and the HVAE, from the committed results (nothing is
re-run): test NLL, -ELBO, KL per level, active units and the bits-back code.

Writes `table.md`.

    python results/hierarchical-vlae/table.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from benchmarks.results import read_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
LOSSLESS = RESULTS / "binarized-mnist-lossless"
BITS_BACK = RESULTS / "bits-back-mnist"
SOURCES = {  # model -> (IWAE on the 500 spread images, the whole-split ELBO pass, BB-ANS)
    "VLAE (zoo)": (LOSSLESS / "vlae-iwae", LOSSLESS / "vlae-elbo", BITS_BACK / "vlae"),
    "HVAE (zoo)": (HERE / "hvae-iwae", LOSSLESS / "hvae", BITS_BACK / "hvae"),
    "hierarchical VLAE": (HERE / "iwae", HERE / "elbo", HERE / "bits-back"),
    # controls, -ELBO only: one level; two levels with free bits per level
    "hierarchical VLAE, one level": (None, HERE / "one-level" / "elbo", None),
    "hierarchical VLAE, free bits per level": (None, HERE / "level-free-bits" / "elbo", None),
}  # fmt: skip
NAN = float("nan")


def one(folder: Path) -> pd.Series:
    table = read_results([folder])
    return table[table["image"] == "__all__"].iloc[0]


def bits_back(folder: Path) -> tuple[float, int]:
    table = read_results([folder])
    coded = table[(table["image"] != "__all__") & (table["rate_kind"] == "coded")]
    assert (coded["bit_error_rate"] == 0).all(), folder  # every image decoded and equal
    return coded["rate_nats"].mean() / (784 * math.log(2)), len(coded)


def steps(folder: Path) -> int:
    """The training budget, from the zoo's provenance or the training run's record."""
    checkpoint = one(folder)["checkpoint"]
    if checkpoint.startswith("zoo:"):
        index = json.loads((RESULTS / "zoo" / "index.json").read_text())
        command = index[checkpoint.removeprefix("zoo:")]["provenance"]["command"]
    else:
        command = json.loads((folder.parent / "train" / "run.json").read_text())["command"]
    return int(command.split("--steps ")[1].split()[0])


def row(name: str) -> dict:
    iwae_dir, elbo_dir, bb_dir = SOURCES[name]
    elbo = one(elbo_dir)
    nll = one(iwae_dir)["nll_nats"] if iwae_dir else NAN
    bb, bb_images = bits_back(bb_dir) if bb_dir else (NAN, NAN)
    out = {
        "model": name, "steps": steps(elbo_dir),
        "NLL (IWAE k=1000, 500 images)": nll,
        "-ELBO (10 000)": elbo["neg_elbo_nats"], "KL (10 000)": elbo["kl_nats"],
        "KL level 0 (top)": elbo.get("kl_nats_l0", elbo["kl_nats"]),
        "KL level 1": elbo.get("kl_nats_l1", NAN),
        "distortion": elbo["distortion_nats"],
        "active units": f"{int(elbo['active_units'])} / {int(elbo['latent_dims'])}",
        "BB-ANS bits/dim": bb, "BB-ANS images": bb_images,
    }  # fmt: skip
    return out


def main() -> None:
    frame = pd.DataFrame([row(name) for name in SOURCES])
    formats = ("", ".0f", ".2f", ".2f", ".2f", ".2f", ".3f", ".2f", "", ".4f", ".0f")
    text = frame.to_markdown(index=False, floatfmt=formats).replace(" nan ", " — ")
    (HERE / "table.md").write_text(
        "# The hierarchical VLAE beside the VLAE and the HVAE (binarized MNIST, nats)\n\n"
        "Written by `table.py` from the committed results. NLL: IWAE k = 1000 on the same 500 "
        "test images spread over the split; the other columns on all 10 000 (KL per level: "
        "level 0 is the top, sampled first). BB-ANS: real messages, every image decoded and "
        "equal, initial bits counted, on N images spread over the split.\n\n" + text + "\n"
    )  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
