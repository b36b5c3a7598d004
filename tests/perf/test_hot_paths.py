"""The hot paths, for CI performance regression (`nox -s perf`; see README "Performance CI").

Every benchmark here is compared in two ways: pytest-benchmark's own absolute comparison
(``--benchmark-compare-fail=median:15%``, for a fixed machine) and, machine-independent, as a
ratio to a fixed reference workload timed beside it, round by round, in the same run
(``vlae-bench perf-gate``).

``VLAE_BENCH_PERF_SLOWDOWN=N`` runs every hot path N times per round: the deliberate slowdown
that shows the gate catches a regression (the reference workload is left alone).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.codec import make_codec
from benchmarks.speed.perf_gate import reference_workload
from vlae_models.core import build
from vlae_models.train import TrainConfig, TrainState, make_optimizer, training_step

pytestmark = pytest.mark.perf
SLOWDOWN = int(os.environ.get("VLAE_BENCH_PERF_SLOWDOWN", "1"))


def run(benchmark, fn, *args):
    """Time ``fn`` over rounds, each preceded by one timed run of the reference workload (in
    pytest-benchmark's untimed setup), so that both see the same load on the machine; the
    reference's median goes into the results as ``extra_info["reference_median_s"]``."""
    reference: list[float] = []

    def setup():
        began = time.perf_counter()
        reference_workload()
        reference.append(time.perf_counter() - began)

    def repeated():
        for _ in range(SLOWDOWN):
            fn(*args)

    benchmark.pedantic(repeated, setup=setup, rounds=9, iterations=1, warmup_rounds=1)
    benchmark.extra_info["reference_median_s"] = statistics.median(reference)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(binarized_mnist_dir):
    from benchmarks.datasets import load_array

    array = load_array("binarized-mnist", "test", data_dir=binarized_mnist_dir.parent)
    return torch.from_numpy(array[:32]).unsqueeze(1)


@pytest.fixture(scope="module")
def kodim(kodak_dir):
    return np.asarray(Image.open(kodak_dir / "kodim01.png"))


@pytest.mark.benchmark(group="reference")
def test_reference_workload(benchmark):
    benchmark.pedantic(reference_workload, rounds=7, iterations=1, warmup_rounds=1)


def _step(model, x):
    torch.manual_seed(0)
    config = TrainConfig(steps=1, batch_size=len(x), ema_decay=0.0, progress=False)
    state = TrainState(model.train(), make_optimizer(model, config), None)
    return lambda: training_step(state, x, config, model.free_bits_nats)


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("name", ["beta-vae", "hvae", "vq-vae", "vlae", "pixelcnn"])
def test_train_step(benchmark, digits, name):
    torch.manual_seed(0)
    model = build(name)
    run(benchmark, _step(model, model.prepare(digits)))


@pytest.mark.benchmark(group="train_step")
def test_train_step_compressai_factorized(benchmark, kodim):
    torch.manual_seed(0)
    model = build("bmshj2018-factorized", image_size=64)
    crops = torch.from_numpy(np.ascontiguousarray(kodim[:128, :128])).permute(2, 0, 1)
    x = model.prepare(
        crops.unfold(1, 64, 64).unfold(2, 64, 64).reshape(3, 4, 64, 64).transpose(0, 1)
    )
    run(benchmark, _step(model, x.contiguous()))


@pytest.mark.benchmark(group="iwae")
@pytest.mark.parametrize("name, images, k", [("beta-vae", 8, 128), ("vlae", 2, 32)])
def test_iwae(benchmark, digits, name, images, k):
    from vlae_models.checkpoint import load
    from vlae_models.zoo import resolve

    model, _ = load(resolve(f"zoo:{name}-binarized-mnist"))
    x = model.prepare(digits[:images])

    def iwae():
        torch.manual_seed(0)
        with torch.no_grad():
            model.log_likelihood(x, k)

    run(benchmark, iwae)


@pytest.mark.benchmark(group="codec")
@pytest.mark.parametrize("name", ["jpeg", "webp", "png", "avif", "jxl", "jpeg2000"])
def test_codec_encode_decode(benchmark, kodim, name):
    codec = make_codec(name)
    data = codec.encode(kodim)
    run(benchmark, lambda: (codec.encode(kodim), codec.decode(data)))


@pytest.mark.benchmark(group="learned_codec")
def test_learned_codec_compress_decompress(benchmark, kodim):
    from baselines.method import plan

    (setting,), _ = plan(["bmshj2018-hyperprior:zoo:hyperprior-photos-0.013"], None)
    codec = setting.build()
    codec.setup("cpu")
    crop = np.ascontiguousarray(kodim[:256, :256])
    data = codec.encode(crop)
    run(benchmark, lambda: (codec.encode(crop), codec.decode(data)))


@pytest.mark.benchmark(group="metrics")
def test_metrics_on_a_kodak_image(benchmark, kodim):
    """PSNR, SSIM and MS-SSIM of one decoded Kodak image (benchmarks.metrics.image)."""
    from benchmarks.metrics import DEFAULT, Scorer

    codec = make_codec("jpeg", 50)
    decoded = codec.decode(codec.encode(kodim))
    run(benchmark, lambda: Scorer(DEFAULT, kodim, False)(decoded))


@pytest.mark.benchmark(group="metrics")
def test_metrics_pytorch_msssim_twice(benchmark, kodim):
    """The same SSIM and MS-SSIM by two pytorch-msssim calls, for comparison with the one
    above, which shares the original's statistics between them."""
    from pytorch_msssim import ms_ssim, ssim

    from benchmarks.metrics.ssim import to_tensor

    codec = make_codec("jpeg", 50)
    decoded = codec.decode(codec.encode(kodim))

    def both():
        x, y = to_tensor(kodim), to_tensor(decoded)
        return ssim(x, y, data_range=255), ms_ssim(x, y, data_range=255)

    run(benchmark, both)


@pytest.mark.benchmark(group="bits_back")
def test_bits_back_encode_decode(benchmark, binarized_mnist_dir):
    """BB-ANS with the zoo β-VAE: 100 digits encoded and decoded (one chain, the default
    100 images a chain)."""
    from benchmarks.datasets import load_array
    from vlae_models import bits_back as bb
    from vlae_models.checkpoint import load
    from vlae_models.zoo import resolve

    model, _ = load(resolve("zoo:beta-vae-binarized-mnist"))
    x = model.prepare(
        torch.from_numpy(
            load_array("binarized-mnist", "test", data_dir=binarized_mnist_dir.parent)[:100]
        ).unsqueeze(1)
    )
    coder = bb.coder_for(model, 8)

    def both():
        message = bb.encode_lanes(coder, x, 1)
        bb.decode_lanes(coder, message.words, message.lengths)

    run(benchmark, both)


@pytest.mark.benchmark(group="bits_back")
def test_pixelcnn_cached_steps(benchmark):
    """The VLAE decoder's cached steps: four rows of 28 pixels for 10 images side by side
    (the per-pixel work of bits-back decoding and of ``sample``)."""
    from vlae_models.checkpoint import load
    from vlae_models.layers.pixel_steps import PixelSteps
    from vlae_models.zoo import resolve

    model, _ = load(resolve("zoo:vlae-binarized-mnist"))
    torch.manual_seed(0)
    cond = model.condition(model.sample_prior(10)).detach()

    @torch.no_grad()
    def rows():
        state = PixelSteps(model.decoder.net, cond, (10, 1, 28, 28))
        for row in range(4):
            state.start_row(row)
            for col in range(28):
                logits = state.pixel(row, col)[:, 0, 0]
                state.write(row, col, slice(0, 1), (logits > 0).float()[:, None])

    run(benchmark, rows)


@pytest.mark.benchmark(group="start_up")
def test_one_line_error_start_up(benchmark):
    """`vlae-bench codecs --dataset nope`: a one-line error, in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    cli = [str(Path(sys.executable).parent / "vlae-bench"), "codecs", "--dataset", "nope"]
    run(benchmark, lambda: subprocess.run(cli, capture_output=True, check=False))


@pytest.mark.benchmark(group="report")
def test_report_rendering(benchmark, tmp_path_factory):
    """The committed demo's report (tables, text and figures) rendered from its results."""
    from pathlib import Path

    from benchmarks.report import render_report
    from benchmarks.results import load_runs, read_results

    demo = Path(__file__).resolve().parents[2] / "results" / "demo"
    frame, out = read_results([demo]), tmp_path_factory.mktemp("report")
    runs = load_runs([demo])
    run(benchmark, lambda: render_report(frame, out, runs=runs))
