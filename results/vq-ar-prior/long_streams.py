"""The 10 000 test digits' indices in streams of 1000 digits under each prior (decoded and
checked): what the coders cost once the per-stream overhead (the final ANS state, ~32-64
bits a stream) is shared. Writes long_streams.json.

    OMP_NUM_THREADS=1 python results/vq-ar-prior/long_streams.py
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.datasets import load_items
from vlae_models.checkpoint import load
from vlae_models.zoo import resolve

HERE = Path(__file__).resolve().parent
CHUNK = 1000  # digits a stream (all 10 000 at once held 15 GB in the decoder's cache)


def main() -> None:
    torch.set_num_threads(1)
    items = load_items("binarized-mnist", split="test")
    pixels = torch.from_numpy(np.stack([it.pixels for it in items]))[:, None]
    out = {}
    for name in ("vq-vae-binarized-mnist", "vq-vae-ar-binarized-mnist"):
        model, _ = load(resolve(f"zoo:{name}"))
        x = model.prepare(pixels)
        streams, encode_s, decode_s = [], 0.0, 0.0
        with torch.no_grad():
            for part in x.split(CHUNK):
                start = time.perf_counter()
                coded = model.compress(part)
                encode_s += time.perf_counter() - start
                start = time.perf_counter()
                decoded = model.decompress(coded["strings"], coded["shape"])["x_hat"]
                decode_s += time.perf_counter() - start
                assert torch.equal(decoded, model.reconstruct(part)), name  # indices came back
                streams.append(coded["strings"])
            stated = sum(model(part).extras["rate_prior"].double().sum().item()
                         for part in x.split(CHUNK))  # fmt: skip
        bits = 8 * sum(len(s) for strings in streams for s in strings)
        out[name] = {"images": len(x), "streams": len(streams), "stream_bytes": bits // 8,
                     "index_bits_per_dim": bits / (len(x) * 784),
                     "stated_index_bits_per_dim": stated / (math.log(2) * len(x) * 784),
                     "encode_s": round(encode_s, 2), "decode_s": round(decode_s, 2)}  # fmt: skip
        print(name, out[name])
    (HERE / "long_streams.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
