"""BB-ANS message lengths of the seed-1 VLAE on all 10 000 test images, resumable.

The split is coded as `vlae-bench codecs -c bb-ans:zoo:vlae-binarized-mnist` codes it: ten
messages of 1000 consecutive images, each in 10 chains side by side. Every message is really
encoded (its length is the real payload); decoding all of it would take 784 sequential
PixelCNN passes an image, so here the last image of every chain (the top of each stack, 10 per
message) is decoded and compared; the 1000-image codecs run in `vlae/` decodes everything.
Usage: python results/bits-back-mnist/vlae_split.py --out results/bits-back-mnist/vlae-split.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.datasets import load_items
from vlae_models import bits_back as bb
from vlae_models.checkpoint import load
from vlae_models.zoo import resolve

MESSAGE, LANES, LATENT_BITS = 1000, 10, 8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    torch.set_num_threads(1)
    model, _ = load(resolve("zoo:vlae-binarized-mnist"), device="cpu", weights="ema")
    coder = bb.coder_for(model.eval(), LATENT_BITS)
    items = load_items("binarized-mnist", split="test")
    done = json.loads(out.read_text()) if out.exists() else {"messages": []}
    for start in range(len(done["messages"]) * MESSAGE, len(items), MESSAGE):
        chunk = items[start : start + MESSAGE]
        x = model.prepare(torch.from_numpy(np.stack([it.pixels for it in chunk]))[:, None])
        began = time.perf_counter()
        message = bb.encode_lanes(coder, x, LANES)
        enc_s = time.perf_counter() - began
        lanes = bb.Lanes.from_words(message.words)
        active, images = bb.schedule(message.lengths)[-1]
        began = time.perf_counter()
        top = coder.decode(lanes, active)
        dec_s = time.perf_counter() - began
        steps = message.steps
        done["messages"].append({
            "first_image": chunk[0].name, "images": len(chunk), "lanes": message.lengths,
            "total_bits": message.total_bits, "initial_bits": sum(message.initial_bits),
            "posterior_bits": int(sum(steps.posterior)), "data_bits": int(sum(steps.data)),
            "prior_bits": int(sum(steps.prior)), "encode_s": enc_s,
            "decoded_top_images": len(images), "decoded_equal": bool(torch.equal(top, x[images])),
            "decode_s_per_image": dec_s / len(images),
        })  # fmt: skip
        out.write_text(json.dumps(done, indent=1) + "\n")
        print(f"{chunk[0].name}: {message.total_bits / len(chunk) / 784:.4f} bits/dim", flush=True)
    total = sum(m["total_bits"] for m in done["messages"])
    n = sum(m["images"] for m in done["messages"])
    print(f"{n} images: {total / n / 784:.4f} bits/dim with every chain's initial bits")


if __name__ == "__main__":
    main()
