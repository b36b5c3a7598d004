"""Issue #22's fast paths, each measured side by side with what it is compared with: one
thread each, alternating rounds, in one run (this machine is shared: ratios, not timings).

    python results/fast-paths/run.py bits-back pixelcnn errors report compressai

Each part prints a markdown table and writes ``results/fast-paths/<part>.json``. Data and
weights come from $VLAE_BENCH_DATA (../shared/data by default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = Path(os.environ.get("VLAE_BENCH_DATA", REPO.parent / "shared" / "data"))
CLI = str(Path(sys.executable).parent / "vlae-bench")
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(sides: dict, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Each side's wall times, the sides taking turns round by round."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, action in sides.items():
            times[name].append(timed(action))
    return times


def summary(times: dict[str, list[float]], against: str) -> list[dict]:
    """Per side: its best and median time, and the ratio of its best to ``against``'s best
    (the least disturbed round of each)."""
    best = {name: min(t) for name, t in times.items()}
    return [
        {"side": name, "best_s": round(best[name], 4),
         "median_s": round(sorted(t)[len(t) // 2], 4),
         "ratio": round(best[name] / best[against], 2)}
        for name, t in times.items()
    ]  # fmt: skip


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


# --- BB-ANS --------------------------------------------------------------------------------


def bits_back() -> list[dict]:
    """The zoo β-VAE's BB-ANS, encode + decode of 1000 binarized-MNIST test images, against
    the same images' batched encoder + decoder passes; lanes 1 (one chain) and the default."""
    import numpy as np
    import torch

    from benchmarks.datasets import load_items
    from vlae_models import bits_back as bb
    from vlae_models.checkpoint import load
    from vlae_models.zoo import resolve

    torch.set_num_threads(1)
    rows = []
    for name, n in (("beta-vae", 1000), ("vlae", 20)):
        model, _ = load(resolve(f"zoo:{name}-binarized-mnist"), device="cpu", weights="ema")
        items = load_items("binarized-mnist", split="test", limit=n, data_dir=DATA)
        x = model.prepare(torch.from_numpy(np.stack([i.pixels for i in items]))[:, None])
        coder = bb.coder_for(model, 8)
        default_lanes = -(-n // coder.images_per_lane)  # what `codecs` uses for n images

        def batched(model=model, x=x, name=name):
            with torch.no_grad():
                if name == "vlae":
                    model.decoder.params(x, model.condition(model.encode(x)[0]))
                else:
                    model.decode(model.encode(x)[0])

        messages: dict = {}

        def coded(lanes, coder=coder, x=x, messages=messages):
            message = bb.encode_lanes(coder, x, lanes)
            assert torch.equal(bb.decode_lanes(coder, message.words, message.lengths), x)
            messages[lanes] = message

        # the VLAE: 20 images in 10 lanes (what 1000 images get), its decoding run in full
        lanes_tried = (1, default_lanes) if name == "beta-vae" else (10,)
        sides = {"batched passes": batched}
        sides.update({f"bb-ans, {k} lane(s)": (lambda k=k: coded(k)) for k in lanes_tried})
        batched()  # warm-up: first calls pay for allocations and lazy imports
        coded(lanes_tried[-1])
        for row in summary(alternate(sides), "batched passes"):
            lanes = next((k for k in lanes_tried if row["side"] == f"bb-ans, {k} lane(s)"), None)
            if lanes is not None:
                m = messages[lanes]
                row["bits_per_dim"] = round(m.total_bits / x[0].numel() / n, 5)
                row["initial_bits"] = sum(m.initial_bits)
            rows.append({"model": name, "images": n, **row})
    return rows


# --- the PixelCNN step -----------------------------------------------------------------------


def pixelcnn() -> list[dict]:
    """The VLAE decoder's cost a pixel at 10 images side by side: the network on the rows its
    window reaches (the previous decoder) against the cached step; and ``sample`` of 10
    images, the previous sampler against today's."""
    import torch

    from vlae_models.checkpoint import load
    from vlae_models.layers.pixel_steps import PixelSteps
    from vlae_models.zoo import resolve

    torch.set_num_threads(1)
    model, _ = load(resolve("zoo:vlae-binarized-mnist"), device="cpu", weights="ema")
    net, n = model.decoder.net, 10
    torch.manual_seed(0)
    cond = model.condition(model.sample_prior(n)).detach()

    @torch.no_grad()
    def window_draw(rows: int = 28):
        """The previous sampler: every pixel runs the network on the rows its window reaches,
        at full width."""
        x = torch.zeros(n, 1, 28, 28)
        for row in range(rows):
            top = max(0, row - net.reach)
            for col in range(28):
                logits = net(x[:, :, top : row + 1], cond[:, :, top : row + 1])[:, 0, 0, -1, col]
                x[:, 0, row, col] = torch.bernoulli(torch.sigmoid(logits))
        return x

    @torch.no_grad()
    def cached_draw():
        state = PixelSteps(net, cond, (n, 1, 28, 28))
        for row in range(28):
            state.start_row(row)
            for col in range(28):
                logits = state.pixel(row, col)[:, 0, 0]
                state.write(row, col, slice(0, 1), torch.bernoulli(torch.sigmoid(logits))[:, None])

    times = alternate({"window (previous)": window_draw, "cached steps": cached_draw})
    rows = []
    for row in summary(times, "window (previous)"):
        row["ms_per_pixel"] = round(row["best_s"] / 784 * 1e3, 3)
        row["speed-up"] = round(1 / row.pop("ratio"), 1)
        rows.append({"what": "draw 10 images (VLAE decoder)", **row})
    sample = alternate({"model.sample(10)": lambda: model.sample(n, mode="sample")}, 2)
    rows.append({"what": "VLAE.sample(10) today", "side": "model.sample(10)",
                 "best_s": round(min(sample["model.sample(10)"]), 3)})  # fmt: skip
    return rows


# --- error paths ---------------------------------------------------------------------------


ERRORS = {
    "codecs -c nope": ["codecs", "-c", "nope"],
    "codecs --dataset nope": ["codecs", "-c", "png", "--dataset", "nope"],
    "codecs --data-dir missing": ["codecs", "-c", "png", "--data-dir", "/no/such/folder"],
    "sweep missing.toml": ["sweep", "/no/such/spec.toml", "--out", "unused"],
    "sweep not TOML": ["sweep", str(REPO / "README.md"), "--out", "unused"],
    "eval missing checkpoint": ["eval", "/no/such.safetensors", "--dataset", "mnist", "--out", "x"],
    "report missing folder": ["report", "/no/such/run"],
}


def errors() -> list[dict]:
    """Each one-line error's wall time, beside `--list` and `python -c 'import torch'`."""
    sides = {"codecs --list": lambda: run(CLI, "codecs", "--list"),
             "import torch": lambda: run(sys.executable, "-c", "import torch")}  # fmt: skip
    for label, args in ERRORS.items():
        done = run(CLI, *args)
        assert done.returncode == 2 and done.stderr.startswith("error: "), (label, done.stderr)
        sides[label] = lambda args=args: run(CLI, *args)
    return summary(alternate(sides), "codecs --list")


# --- report rendering ----------------------------------------------------------------------


def report() -> list[dict]:
    """`vlae-bench report results/demo` against a minimal pandas + matplotlib script writing
    the same table and RD figure (minimal_report.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        ours = lambda: run(CLI, "report", str(REPO / "results" / "demo"), "--out", f"{tmp}/ours")  # noqa: E731
        minimal = lambda: run(sys.executable, str(HERE / "minimal_report.py"),  # noqa: E731
                              str(REPO / "results" / "demo"), f"{tmp}/minimal")  # fmt: skip
        assert ours().returncode == 0 and minimal().returncode == 0
        return summary(alternate({"minimal script": minimal, "vlae-bench report": ours}),
                       "minimal script")  # fmt: skip


# --- CompressAI's eval_model ---------------------------------------------------------------


def compressai() -> list[dict]:
    """One CompressAI checkpoint (the zoo's hyperprior, λ 0.013, in CompressAI's layout) on
    all 24 Kodak images: `python -m compressai.utils.eval_model` against `vlae-bench codecs`."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = f"{tmp}/net.pth.tar"
        assert run(CLI, "export-compressai", "zoo:hyperprior-photos-0.013", ckpt).returncode == 0
        arch = "bmshj2018-hyperprior"
        counter = iter(range(100))

        def theirs():
            done = run(sys.executable, "-m", "compressai.utils.eval_model", "checkpoint",
                       str(DATA / "kodak"), "-a", arch, "-p", ckpt)  # fmt: skip
            assert done.returncode == 0, done.stderr[-500:]

        def ours(*more):
            done = run(CLI, "codecs", "--dataset", "kodak", "--data-dir", str(DATA), "-c",
                       f"{arch}:{ckpt}", "--workers", "1", "--out", f"{tmp}/o{next(counter)}",
                       *more)  # fmt: skip
            assert done.returncode == 0, done.stderr[-500:]

        return summary(alternate({"eval_model": theirs, "vlae-bench codecs": ours}), "eval_model")


PARTS = {"bits-back": bits_back, "pixelcnn": pixelcnn, "errors": errors, "report": report,
         "compressai": compressai}  # fmt: skip

if __name__ == "__main__":
    for part in sys.argv[1:] or list(PARTS):
        rows = PARTS[part]()
        (HERE / f"{part}.json").write_text(json.dumps(rows, indent=1) + "\n")
        print(f"\n## {part}\n\n{table(rows)}", flush=True)
