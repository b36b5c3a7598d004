"""Trained model checkpoints as methods: ``model:PATH`` and ``zoo:NAME``.

A model with ``compress``/``decompress`` (the β-VAE, HVAE, VQ-VAE and VLAE, and any
registered model that has them) is a real codec here: ``encode`` cuts the image into the
model's tiles (``image_size``; edges replicated) and writes one stream
(:mod:`baselines.container`), ``decode`` rebuilds the image from it, and the rows score what
the stream decodes to. Each image gets a ``coded`` row (payload bytes) and the rate the
model states from one forward pass (seeded by the image) beside it: the KL bound for continuous
latents (``kl``, also the ``kl_nats`` column; the VLAE's is a one-sample estimate with the
flow's log-determinant), and for VQ-VAE indices the fixed-length code and the ideal code
length under its learned prior (``fixed``, ``prior``).

A model without ``compress`` writes no stream: its rows carry only the rate it states (its
``rate_kind``, from one forward pass seeded by the image) and score its ``reconstruct(x)``.

Reconstructions are rounded to the data's values (0/1 for binary data, 0..255 for 8-bit)
before they are scored.

torch is imported in ``setup``, not here: listing methods stays fast.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from baselines import container
from baselines.codec import Codec
from baselines.method import Coding, MethodError, ParamSpec, Setting, register_method
from vlae_models.units import LN2


@register_method("model")
class ModelMethod(Codec):
    """A checkpoint written by ``vlae-bench train`` (or a zoo file), scored as a method."""

    name = "model"
    description = "a trained checkpoint, model:PATH; coded bytes beside its KL bound or VQ code"
    param = ParamSpec("beta", 0.0, math.inf, 1.0, integer=False)
    rate_kinds = ("coded", "kl", "fixed", "prior")
    needs_weights = True
    max_items = 256
    from_zoo = False  # the source is a zoo name, not a path
    decoded = "sample"  # an autoregressive decoder's draw; "mean": its conditional means

    @classmethod
    def settings(
        cls, source: str | None, values: str | None, quality: str | None
    ) -> tuple[list[Setting], list[str]]:
        from vlae_models.checkpoint import read_meta
        from vlae_models.core import get_entry
        from vlae_models.zoo import resolve

        if not source:
            raise MethodError(f"give a checkpoint: {cls.name}:PATH")
        if values:
            raise MethodError(f"{cls.name}:{source} takes no values (its β is its training β)")
        ref = f"zoo:{source}" if cls.from_zoo else source  # recorded as the user wrote it
        meta = read_meta(resolve(ref))
        model_cls = get_entry(meta["model"]).model_cls
        label = meta["model"]
        if cls.decoded == "mean":
            if not getattr(model_cls, "autoregressive", False):
                raise MethodError(f"{ref} is a '{label}', whose decoder gives its mean already: "
                                  f"use -c {cls.name.removesuffix('-mean')}:{source}")  # fmt: skip
            label = f"{label}-mean"
        if not model_cls.has_latents:
            raise MethodError(
                f"{ref} is a '{meta['model']}', a model with no latent code: nothing to "
                "reconstruct from (its exact NLL is in `vlae-bench eval`)"
            )
        if getattr(model_cls, "is_compressai", False):  # CompressAI's nets: their own method
            raise MethodError(f"{ref} is a '{meta['model']}': use -c {meta['model']}:{ref}")
        beta = float((meta.get("train_config") or {}).get("beta", 1.0))
        return [Setting(cls.name, label, "beta", beta, ref)], []

    def setup(self, device: str = "cpu") -> None:
        from vlae_models.checkpoint import load
        from vlae_models.zoo import resolve

        self.model, self.meta = load(resolve(self.source), device=device, weights="ema")
        self.device = device
        import torch

        if self.writes_stream:
            self.identity = container.identity(
                self.model.registry_name, self.model, torch.device(device)
            )

    @property
    def writes_stream(self) -> bool:
        return hasattr(self.model, "compress")

    def code(self, arrays: Sequence[np.ndarray]) -> list[Coding]:
        code_one = self._code_stream if self.writes_stream else self._code_stated
        return [code_one(image) for image in arrays]

    def encode(self, image: np.ndarray) -> bytes:
        """The image, cut into the model's tiles, as a stream (header, then strings)."""
        import torch

        if not self.writes_stream:
            raise MethodError(
                f"{self.source} is a '{self.model.registry_name}', which has no compress(): "
                "it states its rate and writes no stream"
            )
        tiles = to_tiles(image, self.model.config.image_size)
        with torch.no_grad():
            coded = self.model.compress(self.model.prepare(tiles.to(self.device)))
        header = {**self.identity, "image": list(image.shape), "latent": coded["shape"]}
        return container.pack(header, coded["strings"])

    def decode(self, data: bytes) -> np.ndarray:
        """The stream -> the uint8 image it encodes (tiles decoded, joined, cropped back)."""
        import torch

        from vlae_models.core import ModelError, to_pixels

        stream = container.unpack(data, self.identity)
        shape = container.image_shape(stream.header.get("image"))
        latent = container.positive_ints(stream.header.get("latent"), 2)
        side = self.model.config.image_size
        if latent[0] != math.ceil(shape[0] / side) * math.ceil(shape[1] / side) or (
            len(shape) == 3 and shape[2] != self.model.config.in_channels
        ):
            raise container.StreamError(f"stream header's shapes do not fit: {shape}, {latent}")
        try:
            with torch.no_grad():
                mode = {"mode": "mean"} if self.decoded == "mean" else {}
                x_hat = self.model.decompress(stream.strings, latent, **mode)["x_hat"]
        except ModelError as err:
            raise container.StreamError(str(err)) from None
        return from_tiles(to_pixels(x_hat, self.model.likelihood.binary).cpu(), shape)

    def stated(self, image: np.ndarray) -> tuple[Any, dict[str, float], dict[str, Any]]:
        """The model input of the image's tiles, the rates the model states for them (one
        forward pass) and the columns beside them.

        The pass is seeded by the image's own pixels: reproducible, and independent from one
        image to the next. (One seed for every image made a one-sample estimate -- the VLAE's
        KL -- share its noise across the whole table: 5.6 nats where the likelihood pass
        gives 8.6 on the same images, docs/learned.md.)"""
        import torch

        from vlae_models.core import ModelError, check_output

        x = self.model.prepare(to_tiles(image, self.model.config.image_size).to(self.device))
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(image_seed(image))
            out = check_output(self.model(x), self.model, len(x))
        extra = {"distortion_nats": float(out.distortion.sum()), "checkpoint": self.source}
        if not self.model.has_continuous_latents:
            kinds = ("fixed", "prior")
            if any(f"rate_{k}" not in out.extras for k in kinds):
                raise ModelError(f"'{self.model.registry_name}' has discrete latents: its forward "
                                 "must put rate_fixed and rate_prior in extras")  # fmt: skip
            return x, {k: float(out.extras[f"rate_{k}"].sum()) for k in kinds}, extra
        rate = float(out.rate.sum())
        if self.model.rate_kind == "kl":
            extra["kl_nats"] = rate
        return x, {self.model.rate_kind: rate}, extra

    def _code_stated(self, image: np.ndarray) -> Coding:
        """A model without a coder: its stated rate, and its reconstruction scored."""
        import torch

        from vlae_models.core import to_pixels

        start = time.perf_counter()
        x, rates, extra = self.stated(image)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            x_hat = self.model.reconstruct(x)
        decoded = from_tiles(to_pixels(x_hat, self.model.likelihood.binary).cpu(), image.shape)
        dec_s = time.perf_counter() - start
        return Coding(decoded, rates, enc_s, dec_s, extra=extra)

    def _code_stream(self, image: np.ndarray) -> Coding:
        _, bounds, extra = self.stated(image)
        start = time.perf_counter()
        data = self.encode(image)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = self.decode(data)  # what is scored is what the stream decodes to
        dec_s = time.perf_counter() - start
        payload = container.unpack(data, self.identity).payload_bytes
        autoregressive = getattr(self.model, "autoregressive", False)
        drawn = "draw" if autoregressive and self.decoded == "sample" else "mean"
        return Coding(
            decoded, {"coded": payload * 8 * LN2, **bounds}, enc_s, dec_s, n_bytes=payload,
            extra={**extra, "container_bytes": len(data), "decoded_as": drawn},
        )  # fmt: skip


def image_seed(image: np.ndarray) -> int:
    """A seed drawn from the image's bytes: the same image, the same draws; another image,
    other draws."""
    digest = hashlib.sha256(memoryview(np.ascontiguousarray(image)).cast("B")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def to_tiles(image: np.ndarray, side: int) -> Any:
    """uint8 H x W (x C) -> torch uint8 (T, C, side, side): row-major tiles of the image,
    its right and bottom edges replicated up to a multiple of ``side``."""
    import torch

    pixels = image[..., None] if image.ndim == 2 else image
    h, w = pixels.shape[:2]
    padded = np.pad(pixels, ((0, (-h) % side), (0, (-w) % side), (0, 0)), mode="edge")
    rows, cols = padded.shape[0] // side, padded.shape[1] // side
    tiles = padded.reshape(rows, side, cols, side, -1).transpose(0, 2, 4, 1, 3)
    return torch.from_numpy(np.ascontiguousarray(tiles.reshape(rows * cols, -1, side, side)))


def from_tiles(tiles: Any, shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`to_tiles`: (T, C, side, side) -> uint8 array of ``shape``."""
    side = tiles.shape[-1]
    h, w = shape[0], shape[1]
    rows, cols = math.ceil(h / side), math.ceil(w / side)
    grid = tiles.numpy().reshape(rows, cols, -1, side, side).transpose(0, 3, 1, 4, 2)
    image = grid.reshape(rows * side, cols * side, -1)[:h, :w]
    return np.ascontiguousarray(image[..., 0] if len(shape) == 2 else image)


@register_method("zoo")
class ZooMethod(ModelMethod):
    """A checkpoint of the suite's offline zoo by name: ``zoo:NAME`` (see ``results/zoo``)."""

    name = "zoo"
    description = "a reference checkpoint of the offline zoo, zoo:NAME (results/zoo/index.json)"
    from_zoo = True


@register_method("model-mean")
class ModelMeanMethod(ModelMethod):
    """``model:PATH`` with an autoregressive decoder (the VLAE's PixelCNN) emitting each
    pixel's conditional mean given z and the pixels drawn before it (seed 0) instead of the
    draw: the same stream and z, the decoder's mean."""

    name = "model-mean"
    description = "as model:PATH, decoded to the decoder's conditional means (VLAE)"
    decoded = "mean"


@register_method("zoo-mean")
class ZooMeanMethod(ModelMeanMethod):
    """``zoo:NAME`` decoded to the decoder's conditional means (see ``model-mean``)."""

    name = "zoo-mean"
    description = "as zoo:NAME, decoded to the decoder's conditional means (VLAE)"
    from_zoo = True
