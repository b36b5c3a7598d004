"""Trained model checkpoints as methods: ``model:PATH`` and ``zoo:NAME``.

Until a model has an entropy coder, its rate is what it can honestly state from one forward
pass (at a fixed seed): the KL bound per image for continuous latents (``kl``; the VLAE's is
a one-sample estimate with the flow's log-determinant), and for VQ-VAE indices both the
fixed-length code and the code length under its learned prior (``fixed``, ``prior``). Its
reconstruction is the model's ``point_reconstruction``: the decoder mean at the posterior mean
(nearest code for VQ-VAE), and for the VLAE a draw from p(x | z) at the posterior mean z
through its PixelCNN, with a fixed seed (greedy decoding, each pixel its most likely value,
turned every 8-bit MNIST digit black: see ``VLAE.point_reconstruction``). Reconstructions are
rounded to the data's values (0/1 for binary data, 0..255 for 8-bit) before they are scored.

torch is imported in ``setup``, not here: listing methods stays fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from baselines.method import METHODS, Coding, Method, MethodError, ParamSpec, Setting


@METHODS.add("model")
class ModelMethod(Method):
    """A checkpoint written by ``vlae-bench train`` (or a zoo file), scored as a method."""

    name = "model"
    description = "a trained checkpoint, model:PATH; rate = its KL bound or VQ code length"
    param = ParamSpec("beta", 0.0, math.inf, 1.0, integer=False)
    rate_kinds = ("kl", "fixed", "prior")
    max_items = 256

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
        ref = source if cls.name == "model" else f"zoo:{source}"  # recorded as the user wrote it
        meta = read_meta(resolve(ref))
        if not get_entry(meta["model"]).model_cls.has_latents:
            raise MethodError(
                f"{ref} is a '{meta['model']}', a model with no latent code: nothing to "
                "reconstruct from (its exact NLL is in `vlae-bench eval`)"
            )
        beta = float((meta.get("train_config") or {}).get("beta", 1.0))
        return [Setting(cls.name, meta["model"], "beta", beta, ref)], []

    def setup(self, device: str = "cpu") -> None:
        from vlae_models.checkpoint import load
        from vlae_models.zoo import resolve

        self.model, self.meta = load(resolve(self.source), device=device, weights="ema")
        self.device = device

    def code(self, arrays: Sequence[np.ndarray]) -> list[Coding]:
        import torch

        from vlae_models.core import to_pixels

        model = self.model
        batch = torch.from_numpy(np.stack(arrays))
        batch = batch.unsqueeze(1) if batch.dim() == 3 else batch.permute(0, 3, 1, 2)
        x = model.prepare(batch.to(self.device))
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            start = time.perf_counter()
            out = model(x)
            enc_s = time.perf_counter() - start
            start = time.perf_counter()
            recon = model.point_reconstruction(x)
            dec_s = time.perf_counter() - start
        pixels = to_pixels(recon, binary=model.likelihood.binary).cpu()
        pixels = pixels[:, 0] if arrays[0].ndim == 2 else pixels.permute(0, 2, 3, 1)
        if model.has_continuous_latents:
            rates = {"kl": out.rate}
        else:
            rates = {"fixed": out.extras["rate_fixed"], "prior": out.extras["rate_prior"]}
        n = len(arrays)
        return [
            Coding(
                np.ascontiguousarray(pixels[i].numpy()),
                {kind: float(r[i]) for kind, r in rates.items()},
                enc_s / n,
                dec_s / n,
                extra={
                    "distortion_nats": float(out.distortion[i]),
                    "checkpoint": self.source,
                    **({"kl_nats": float(out.rate[i])} if "kl" in rates else {}),
                },
            )
            for i in range(n)
        ]


@METHODS.add("zoo")
class ZooMethod(ModelMethod):
    """A checkpoint of the suite's offline zoo by name: ``zoo:NAME`` (see ``results/zoo``)."""

    name = "zoo"
    description = "a reference checkpoint of the offline zoo, zoo:NAME (results/zoo/index.json)"
