"""Bits-back coding (BB-ANS) of a trained model as a lossless method: ``bb-ans:zoo:NAME``.

The model (a β-VAE, HVAE or VLAE checkpoint with a Bernoulli likelihood) codes the images of
a task as one message (:func:`vlae_models.bits_back.encode_lanes`), in chains ("lanes") of
at most ``images_per_lane`` images side by side (100; the HVAE 1000), and the message is
decoded again; what is scored is what it decodes to, so a row
with an infinite PSNR is a checked round trip. The message is one stream of
:mod:`baselines.container` (its CRC refuses damage before the decoder runs; the lanes' return
to their initial bits catches the rest).

Rates. ``coded`` is each image's share of the real message (its net push on its lane's
stack; the lane's first image also carries the lane's initial bits, its last the final
word's padding), so the rows of a task sum to the message's payload. The parameter is the
latent precision (bins of 2**-latent_bits prior standard deviations). Columns beside it:
``initial_bits``, ``lane``, ``lane_position``, the bits the posterior gave back
(``posterior_bits``) and the data and prior pushed (``data_bits``, ``prior_bits``), and the
message's ``lanes``. ``enc_s``/``dec_s`` are the message's times shared over its images.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from baselines import container
from baselines.codec import Codec
from baselines.method import (
    Coding,
    MethodError,
    ParamSpec,
    Setting,
    parse_values,
    register_method,
)
from vlae_models.units import LN2


@register_method("bb-ans")
class BitsBackMethod(Codec):
    """BB-ANS (Townsend, Bird & Barber 2019) on constriction's ANS, for a trained VAE."""

    name = "bb-ans"
    description = "bits-back coding (BB-ANS) with a trained VAE, bb-ans:zoo:NAME; lossless"
    param = ParamSpec("latent_bits", 1, 16, 8, integer=True)
    rate_kinds = ("coded",)
    lossless = True
    needs_weights = True
    max_items = 1000  # images per message (one task); the split is a few such messages

    @classmethod
    def settings(
        cls, source: str | None, values: str | None, quality: str | None
    ) -> tuple[list[Setting], list[str]]:
        from vlae_models.bits_back import CODERS
        from vlae_models.checkpoint import read_meta
        from vlae_models.zoo import resolve

        if not source:
            raise MethodError("give a model: bb-ans:zoo:NAME or bb-ans:PATH")
        meta = read_meta(resolve(source))
        if meta["model"] not in CODERS:
            raise MethodError(
                f"bb-ans: no bits-back coder for a '{meta['model']}' (supported: "
                f"{', '.join(CODERS)})"
            )
        chosen = parse_values(values) if values else [cls.param.default]
        label = f"bb-ans {meta['model']}"
        return [
            Setting(cls.name, label, cls.param.name, cls.param.check(cls.name, v), source)
            for v in chosen
        ], []

    def setup(self, device: str = "cpu") -> None:
        import torch

        from vlae_models.bits_back import coder_for
        from vlae_models.checkpoint import load
        from vlae_models.zoo import resolve

        self.model, _ = load(resolve(self.source), device=device, weights="ema")
        self.coder = coder_for(self.model, int(self.value))
        self.device = torch.device(device)
        self.identity = container.identity(f"bb-ans/{self.value:g}", self.model, self.device)

    def encode(self, image: np.ndarray) -> bytes:
        """One image as a message of its own (one lane, its initial bits included)."""
        return self._encode_message([image])[0]

    def decode(self, data: bytes) -> np.ndarray:
        """A message of one image -> that image."""
        images = self._decode_message(data)
        if len(images) != 1:
            raise container.StreamError(f"stream holds {len(images)} images, not one")
        return images[0]

    def _encode_message(self, arrays: Sequence[np.ndarray]):
        """The images (uint8, H x W, 0/1) as one stream, and the message's accounting."""
        import torch

        from vlae_models.bits_back import encode_lanes

        _check_binary(arrays)
        x = self.model.prepare(torch.from_numpy(np.stack(arrays)[:, None]).to(self.device))
        message = encode_lanes(self.coder, x, -(-len(arrays) // self.coder.images_per_lane))
        header = {**self.identity, "image": list(arrays[0].shape), "lanes": message.lengths}
        strings = [w.astype("<u4").tobytes() for w in message.words]
        return container.pack(header, strings), message

    def _decode_message(self, data: bytes) -> list[np.ndarray]:
        """A stream -> its images, in the order they were encoded."""
        import torch

        from vlae_models.bits_back import BitsBackError, decode_lanes

        stream = container.unpack(data, self.identity)
        lengths = stream.header.get("lanes")
        shape = container.image_shape(stream.header.get("image"))
        if not isinstance(lengths, list) or len(lengths) != len(stream.strings) or not all(
            type(n) is int and 0 < n <= 1 << 20 for n in lengths
        ):  # fmt: skip
            raise container.StreamError(f"stream header has bad lanes {lengths!r}")
        if shape != list(self.coder.image_shape[1:]):
            raise container.StreamError(f"stream holds {shape} images; the model codes "
                                        f"{list(self.coder.image_shape[1:])}")  # fmt: skip
        if any(len(s) % 4 for s in stream.strings):
            raise container.StreamError("stream's lanes are not whole 32-bit words")
        words = [np.frombuffer(s, dtype="<u4").astype(np.uint32) for s in stream.strings]
        try:
            images = decode_lanes(self.coder, words, lengths)
        except BitsBackError as err:
            raise container.StreamError(str(err)) from None
        return list(images[:, 0].to(dtype=torch.uint8).cpu().numpy())

    def code(self, arrays: Sequence[np.ndarray]) -> list[Coding]:
        """The task's images as one message (``lanes`` chains side by side), decoded again."""
        start = time.perf_counter()
        data, message = self._encode_message(arrays)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = self._decode_message(data)
        dec_s = time.perf_counter() - start
        shares = message.image_bits()
        lanes = np.repeat(np.arange(len(message.lengths)), message.lengths)
        positions = np.concatenate([np.arange(n) for n in message.lengths])
        steps, n = message.steps, len(arrays)
        return [
            Coding(
                decoded[i],
                {"coded": float(shares[i]) * LN2},
                enc_s / n,
                dec_s / n,
                n_bytes=None,
                extra={
                    "initial_bits": message.initial_bits[lanes[i]] if positions[i] == 0 else 0,
                    "lane": int(lanes[i]),
                    "lane_position": int(positions[i]),
                    "lanes": len(message.lengths),
                    "posterior_bits": steps.posterior[i],
                    "data_bits": steps.data[i],
                    "prior_bits": steps.prior[i],
                    "message_bytes": len(data),
                    "payload_bytes": sum(len(w) * 4 for w in message.words),
                    "checkpoint": self.source,
                },
            )  # fmt: skip
            for i in range(n)
        ]


def _check_binary(arrays: Sequence[np.ndarray]) -> None:
    if any(a.ndim != 2 or a.max(initial=0) > 1 for a in arrays):
        raise MethodError("bb-ans codes binary gray images (0/1): use a binarized dataset")
