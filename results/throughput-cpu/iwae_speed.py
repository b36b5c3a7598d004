"""Side-by-side speed of the IWAE path, one thread, alternating rounds in one process.

1. The VLAE's IWAE (zoo:vlae-binarized-mnist, 8 test images, k = 256): eager against
   ``compile=True`` (torch.compile of the PixelCNN), and the largest difference between the
   two estimates.
2. The beta-VAE's IWAE at k = 1000 (zoo:beta-vae-binarized-mnist, 16 images) against the
   decoder-only work of the same rows at the same chunk size (decode plus likelihood).

    export VLAE_BENCH_DATA=../shared/data
    python results/throughput-cpu/iwae_speed.py > results/throughput-cpu/iwae_speed.json
"""

import copy
import json
import statistics
import time

import torch

from benchmarks.datasets import load_array
from vlae_models.checkpoint import load
from vlae_models.core import IW_ROWS, compile_networks
from vlae_models.zoo import resolve

ROUNDS = 5


def timed(fn):
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def iwae(model, x, k):
    def run():
        torch.manual_seed(0)
        with torch.no_grad():
            return torch.cat([model.log_likelihood(x[i : i + 8], k) for i in range(0, len(x), 8)])

    return run


def vlae_eager_vs_compiled(pixels):
    eager, _ = load(resolve("zoo:vlae-binarized-mnist"))
    compiled = copy.deepcopy(eager)
    compile_networks(compiled)
    x, k = eager.prepare(pixels[:8]), 256
    compile_s, _ = timed(iwae(compiled, x, k))  # the first call compiles
    times = {"eager": [], "compiled": []}
    for _ in range(ROUNDS):
        for name, model in (("eager", eager), ("compiled", compiled)):
            seconds, value = timed(iwae(model, x, k))
            times[name].append(seconds)
            times[name + "_nll"] = value
    diff = float((times.pop("eager_nll") - times.pop("compiled_nll")).abs().max())
    rows = len(x) * k
    eager_s, compiled_s = (statistics.median(times[n]) for n in ("eager", "compiled"))
    return {"rows": rows, "eager_rows_per_s": rows / eager_s,
            "compiled_rows_per_s": rows / compiled_s, "speedup": eager_s / compiled_s,
            "first_call_with_compile_s": compile_s, "max_abs_nll_difference_nats": diff,
            "rounds_s": times}  # fmt: skip


def beta_vae_overhead(pixels):
    model, _ = load(resolve("zoo:beta-vae-binarized-mnist"))
    x, k = model.prepare(pixels[:16]), 1000
    per_call = max(8, IW_ROWS // k)
    chunk = IW_ROWS // per_call
    z = torch.randn(per_call * chunk, model.config.latent_dim)
    x_rows = x[:per_call].repeat_interleave(chunk, 0)
    calls = len(x) * k // (per_call * chunk)

    def decoder_only():
        with torch.no_grad():
            for _ in range(calls):
                model.likelihood.log_prob(model.decode(z), x_rows)

    run = iwae(model, x, k)
    run(), decoder_only()  # warm-up
    times = {"iwae": [], "decoder_only": []}
    for _ in range(ROUNDS):
        times["iwae"].append(timed(run)[0])
        times["decoder_only"].append(timed(decoder_only)[0])
    ratio = statistics.median(times["iwae"]) / statistics.median(times["decoder_only"])
    return {"rows": len(x) * k, "chunk_rows": per_call * chunk, "iwae_over_decoder_only": ratio,
            "rounds_s": times}  # fmt: skip


def main():
    torch.set_num_threads(1)
    pixels = torch.from_numpy(load_array("binarized-mnist", "test")).unsqueeze(1)
    pixels = pixels[torch.linspace(0, len(pixels) - 1, 16).long()]
    out = {"vlae_iwae": vlae_eager_vs_compiled(pixels), "beta_vae_iwae": beta_vae_overhead(pixels),
           "torch": torch.__version__, "threads": torch.get_num_threads()}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
