"""Bits-back coding (BB-ANS) on real binarized MNIST with the zoo's weights: round trips,
the message's accounting, its length against the model's -ELBO, and damaged messages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli, stepped_params

from baselines import container
from baselines.bits_back import BitsBackMethod
from baselines.method import Setting
from benchmarks.datasets import load_items
from vlae_models import bits_back as bb
from vlae_models.checkpoint import load
from vlae_models.zoo import resolve


def zoo_model(name: str):
    model, _ = load(resolve(f"zoo:{name}-binarized-mnist"), device="cpu", weights="ema")
    return model.eval()


def digits(binarized_mnist_dir, model, n: int) -> torch.Tensor:
    items = load_items("binarized-mnist", split="test", data_dir=binarized_mnist_dir.parent,
                       limit=n)  # fmt: skip
    return model.prepare(torch.from_numpy(np.stack([it.pixels for it in items]))[:, None])


@pytest.mark.parametrize(("name", "n", "lanes"), [("beta-vae", 96, 2), ("hvae", 24, 1)])
def test_round_trip_and_length_against_the_elbo(binarized_mnist_dir, name, n, lanes):
    model = zoo_model(name)
    x = digits(binarized_mnist_dir, model, n)
    coder = bb.coder_for(model, 8)
    message = bb.encode_lanes(coder, x, lanes)
    assert torch.equal(bb.decode_lanes(coder, message.words, message.lengths), x)
    # the images' shares add up to the message, initial bits included
    assert message.image_bits().sum() == message.total_bits
    assert len(message.initial_bits) == lanes and min(message.initial_bits) > 0
    # net cost per image = a one-sample -ELBO at the coded z: its mean is the -ELBO's,
    # within sampling error and a little for the discretization of z
    net = (np.array(message.steps.data) + np.array(message.steps.prior)
           - np.array(message.steps.posterior)) * math.log(2)  # fmt: skip
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = np.mean(
            [(lambda o: (o.distortion + o.rate).numpy())(model(x)) for _ in range(16)], 0
        )
    standard_error = np.std(net - elbo) / math.sqrt(n)
    assert abs(net.mean() - elbo.mean()) < 4 * standard_error + 0.01 * elbo.mean()


def test_vlae_decodes_pixel_by_pixel_to_the_encoded_images(binarized_mnist_dir):
    model = zoo_model("vlae")
    x = digits(binarized_mnist_dir, model, 4)
    coder = bb.coder_for(model, 8)
    message = bb.encode_lanes(coder, x, 2)
    assert message.lengths == [2, 2]
    assert torch.equal(bb.decode_lanes(coder, message.words, message.lengths), x)


def test_the_cached_steps_give_the_one_pass_logits_bit_for_bit(binarized_mnist_dir):
    """What the VLAE decoder relies on: on whole digits, its pixel-by-pixel logits equal the
    encoder's one-pass logits, and those are the network's own to float rounding."""
    model = zoo_model("vlae")
    x = digits(binarized_mnist_dir, model, 6)
    coder = bb.coder_for(model, 8)
    symbols = np.round(np.random.default_rng(0).normal(size=(6, coder.latent_dims)) * 256)
    cond = coder._condition(symbols.astype(np.int32))
    one_pass = coder.logits(x, symbols.astype(np.int32))
    assert torch.equal(stepped_params(model.decoder.net, x, cond)[:, :, 0], one_pass)
    with torch.no_grad():
        torch.testing.assert_close(one_pass, model.decoder.params(x, cond), rtol=0, atol=1e-4)


def test_latent_precision_trades_discretization_for_initial_bits(binarized_mnist_dir):
    model = zoo_model("beta-vae")
    x = digits(binarized_mnist_dir, model, 32)
    coarse, fine = (bb.encode_lanes(bb.coder_for(model, b), x) for b in (2, 10))
    assert fine.initial_bits[0] > coarse.initial_bits[0]
    assert sum(coarse.steps.posterior) < sum(fine.steps.posterior)  # finer bins: more back


def method(name: str = "beta-vae") -> BitsBackMethod:
    setting = Setting("bb-ans", f"bb-ans {name}", "latent_bits", 8,
                      f"zoo:{name}-binarized-mnist")  # fmt: skip
    built = setting.build()
    built.setup("cpu")
    return built


def test_damaged_messages_fail_cleanly(binarized_mnist_dir):
    coder_method = method()
    images = [it.pixels for it in load_items("binarized-mnist", split="test", limit=20,
                                              data_dir=binarized_mnist_dir.parent)]  # fmt: skip
    data = coder_method.encode(images[3])  # the one stream face: one image, one message
    assert np.array_equal(coder_method.decode(data), images[3])
    codings = coder_method.code(images)  # a task's images, as one message of chained images
    assert all(np.array_equal(c.reconstruction, x) for c, x in zip(codings, images, strict=True))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(container.StreamError, match="CRC"):
        coder_method.decode(bytes(flipped))
    # a payload changed under a valid checksum: the lane does not return to its initial bits
    stream = container.unpack(data, coder_method.identity)
    words = bytearray(stream.strings[0])
    words[len(words) // 2] ^= 0x01
    forged = container.pack({**coder_method.identity, **stream.header}, [bytes(words)])
    with pytest.raises(container.StreamError, match="message is damaged"):
        coder_method.decode(forged)
    with pytest.raises(container.StreamError, match="whole 32-bit words"):
        header = {**coder_method.identity, **stream.header}
        coder_method.decode(container.pack(header, [bytes(words[:-1])]))


def test_codecs_cli_round_trips_and_sums_to_the_message(binarized_mnist_dir, tmp_path, monkeypatch,
                                                        capsys):  # fmt: skip
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    out = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", "binarized-mnist",
                           "--split", "test", "-c", "bb-ans:zoo:beta-vae-binarized-mnist=4,8",
                           "--limit", "40", "--workers", "1", "--out", str(out))  # fmt: skip
    assert code == 0, err
    rows = pd.read_parquet(out / "results.parquet")
    assert set(rows["value"]) == {4, 8} and (rows["rate_kind"] == "coded").all()
    assert (rows["bit_error_rate"] == 0).all()  # decoded exactly
    for _, group in rows.groupby("value"):
        bits = group["rate_nats"].sum() / math.log(2)
        assert bits == pytest.approx(8 * group["payload_bytes"].iloc[0])
        assert group["message_bytes"].iloc[0] > group["payload_bytes"].iloc[0]  # + header
        assert group["initial_bits"].sum() == group["initial_bits"].max() > 0  # one lane


def test_models_without_bits_back_are_refused(monkeypatch, capsys, tmp_path, binarized_mnist_dir):
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", "binarized-mnist",
                           "-c", "bb-ans:zoo:vq-vae-binarized-mnist", "--limit", "2",
                           "--out", str(tmp_path / "r"))  # fmt: skip
    assert code != 0 and "no bits-back coder for a 'vq-vae'" in err
    from vlae_models.core import build

    with pytest.raises(bb.BitsBackError, match="Bernoulli"):
        bb.coder_for(build("beta-vae", likelihood="gaussian"), 8)
