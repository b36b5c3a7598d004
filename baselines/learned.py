"""CompressAI's learned codecs as methods, with real bitstreams.

Architectures: ``bmshj2018-factorized`` and ``bmshj2018-hyperprior`` (Ballé et al. 2018),
``mbt2018-mean`` and ``mbt2018`` (Minnen et al. 2018), ``cheng2020-anchor`` (Cheng et al.
2020). Weights come from

- ``-c ARCH=QUALITIES``: CompressAI's pretrained zoo, downloaded at run time (refused at once
  under ``VLAE_BENCH_OFFLINE=1``, and a one-line error wherever the download fails);
- ``-c ARCH:PATH``: a checkpoint in CompressAI's own layout (a state dict, or one under the
  ``state_dict``, ``network`` or ``model_state_dict`` key), read with
  ``torch.load(weights_only=True)`` so that no file can run code.

Evaluation follows CompressAI's ``eval_model``: the image is padded to a multiple of 64,
centred, with zeros; ``update(force=True)`` runs before any coding; the reconstruction is
``decompress(compress(x))``, cropped back and rounded to 8 bits, so what is scored is what the
bitstream decodes to. Two rates per image: ``coded``, the payload strings' bytes over the
unpadded pixels (CompressAI's count), and ``estimate``, the forward pass's entropy estimate
−Σ log2 p (the gap between them is a column, not a footnote). Encode and decode are timed
apart, with CUDA synchronisation on a GPU.

torch and compressai are imported in ``setup``: listing methods stays fast.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from baselines import container
from baselines.codec import Codec
from baselines.method import Coding, MethodError, ParamSpec, Setting, register_method
from vlae_models.units import LN2

ARCHITECTURES = {
    "bmshj2018-factorized": "bmshj2018_factorized",
    "bmshj2018-hyperprior": "bmshj2018_hyperprior",
    "mbt2018-mean": "mbt2018_mean",
    "mbt2018": "mbt2018",
    "cheng2020-anchor": "cheng2020_anchor",
}
STATE_KEYS = ("state_dict", "network", "model_state_dict")
PAD = 64


class CompressAICodec(Codec):
    """One CompressAI architecture; subclasses set ``name`` (the architecture)."""

    param = ParamSpec("quality", 1, 8, 3, sweep=(1, 2, 3, 4, 5, 6))
    rate_kinds = ("coded", "estimate")
    needs_weights = True  # a checkpoint, or CompressAI's pretrained download
    max_items = 1
    architecture: ClassVar[str]

    @classmethod
    def settings(
        cls, source: str | None, values: str | None, quality: str | None
    ) -> tuple[list[Setting], list[str]]:
        if source is None:  # the pretrained zoo, one setting per quality
            if os.environ.get("VLAE_BENCH_OFFLINE") == "1":
                raise MethodError(
                    f"CompressAI's pretrained '{cls.name}' weights are downloaded at run time, "
                    f"and VLAE_BENCH_OFFLINE=1; give a checkpoint: -c {cls.name}:PATH"
                )
            return super().settings(None, values, quality)
        if values:
            raise MethodError(f"{cls.name}:{source} takes no values (the checkpoint is one)")
        if is_suite_checkpoint(source):  # trained by `vlae-bench train ARCH`: its λ labels it
            from vlae_models.checkpoint import read_meta
            from vlae_models.zoo import resolve

            meta = read_meta(resolve(source))
            if meta.get("model") != cls.name:
                raise MethodError(f"{source} holds a '{meta.get('model')}', not a {cls.name}")
            lmbda = float(meta["model_config"]["lmbda"])
            return [Setting(cls.name, cls.name, "lambda", lmbda, source)], []
        state_dict(cls.name, source)  # a wrong file fails here, before any work starts
        return [Setting(cls.name, cls.name, "checkpoint", 0, source)], []

    def __init__(self, value: float | None = None, source: str | None = None) -> None:
        self.value, self.source = value, source  # a checkpoint has no quality to check

    def setup(self, device: str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.net = (self._load(self.source) if self.source else self._pretrained()).to(device)
        self.net.eval()
        self.identity = container.identity(self.name, self.net, self.device)
        self.net.update(force=True)  # entropy-coder tables from the learned CDFs

    def _pretrained(self) -> Any:
        import compressai.zoo

        builder = getattr(compressai.zoo, ARCHITECTURES[self.name])
        try:
            return builder(quality=int(self.value), pretrained=True, progress=False)
        except Exception as err:  # urllib, hub and HTTP errors all mean: no weights
            raise MethodError(
                f"cannot download CompressAI's pretrained '{self.name}' (quality "
                f"{self.value:g}): {' '.join(str(err).split())[:120]}; give a checkpoint: "
                f"-c {self.name}:PATH"
            ) from None

    def _load(self, path: str) -> Any:
        from compressai.zoo.image import model_architectures

        if is_suite_checkpoint(path):
            from vlae_models.compressai_nets import network
            from vlae_models.zoo import resolve

            return network(resolve(path))[0]
        state = state_dict(self.name, path)
        try:
            return model_architectures[self.name].from_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as err:
            message = " ".join(str(err).split())[:160]
            raise MethodError(f"{self.name}: {path} does not fit: {message}") from None

    def encode(self, image: np.ndarray) -> bytes:
        """A uint8 RGB image -> the whole stream (header and strings, see ``container``)."""
        return self._encode_padded(self._padded(image)[0], image)

    def _encode_padded(self, padded: Any, image: np.ndarray) -> bytes:
        import torch

        with torch.no_grad():
            coded = self.net.compress(padded)
        strings = [batch[0] for batch in coded["strings"]]
        header = {
            **self.identity, "image": list(image.shape[:2]),
            "latent": [int(n) for n in coded["shape"]],
        }  # fmt: skip
        return container.pack(header, strings)

    def decode(self, data: bytes) -> np.ndarray:
        """The stream -> the uint8 RGB image it encodes, cropped back and rounded."""
        import torch

        stream = container.unpack(data, self.identity)
        h, w = container.image_shape(stream.header.get("image"))[:2]
        latent = container.positive_ints(stream.header.get("latent"), 2)
        stride = 16 if self.name == "bmshj2018-factorized" else 64  # y's grid, or z's
        if latent != [-(-h // PAD) * PAD // stride, -(-w // PAD) * PAD // stride]:
            raise container.StreamError("stream header's latent shape does not fit its image")
        with torch.no_grad():
            x_hat = self.net.decompress([[s] for s in stream.strings], latent)["x_hat"]
        pads = _pads(h, w)
        x_hat = x_hat[..., pads[2] : pads[2] + h, pads[0] : pads[0] + w]
        pixels = (x_hat.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0)
        return np.ascontiguousarray(pixels.cpu().numpy())

    def _padded(self, image: np.ndarray) -> tuple[Any, tuple[int, int, int, int]]:
        import torch
        import torch.nn.functional as F

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise MethodError(f"{self.name} codes uint8 RGB images (H x W x 3), got {image.shape}")
        h, w = image.shape[:2]
        x = torch.tensor(image).permute(2, 0, 1)[None].float().div(255).to(self.device)
        pads = _pads(h, w)
        return F.pad(x, pads, mode="constant", value=0), pads

    def code(self, arrays: Sequence[np.ndarray]) -> list[Coding]:
        return [self._code_one(image) for image in arrays]

    def _code_one(self, image: np.ndarray) -> Coding:
        import torch

        padded, _ = self._padded(image)
        with torch.no_grad(), _analysis_once(self.net):
            start = _now(torch, self.device)
            data = self._encode_padded(padded, image)  # the whole encoder, g_a included
            enc_s = _now(torch, self.device) - start
            with _without_synthesis(self.net):  # reuses g_a's output from compress
                likelihoods = self.net(padded)["likelihoods"].values()
                estimate_bits = float(sum(-torch.log2(p).sum() for p in likelihoods))
        start = _now(torch, self.device)
        decoded = self.decode(data)  # what is scored is what the stream decodes to
        dec_s = _now(torch, self.device) - start
        payload = container.unpack(data, self.identity).payload_bytes
        return Coding(
            decoded, {"coded": payload * 8 * LN2, "estimate": estimate_bits * LN2},
            enc_s, dec_s, n_bytes=payload,
            extra={"checkpoint": self.source, "container_bytes": len(data)},
        )  # fmt: skip


def _pads(h: int, w: int) -> tuple[int, int, int, int]:
    """eval_model's padding to a multiple of 64, centred: (left, right, top, bottom)."""
    pad_h, pad_w = (-h) % PAD, (-w) % PAD
    return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


def state_dict(name: str, path: str) -> dict[str, Any]:
    """The state dict of a checkpoint in CompressAI's layout, read without running code."""
    import torch

    if not Path(path).is_file():
        raise MethodError(f"{name}: checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unsafe-global errors alike
        message = " ".join(str(err).split())[:160]
        raise MethodError(f"{name}: cannot read checkpoint {path}: {message}") from None
    state = next((blob[k] for k in STATE_KEYS if isinstance(blob, dict) and k in blob), blob)
    if not isinstance(state, dict) or not any(str(k).startswith("g_a.") for k in state):
        raise MethodError(
            f"{name}: {path} holds no CompressAI state dict (looked for {STATE_KEYS} and the "
            "top level; expected keys such as g_a.0.weight)"
        )
    return state


@contextlib.contextmanager
def _swapped(net: Any, name: str, module: Any) -> Iterator[None]:
    original = getattr(net, name)
    setattr(net, name, module)
    try:
        yield
    finally:
        setattr(net, name, original)


def _analysis_once(net: Any) -> contextlib.AbstractContextManager:
    """Let ``compress`` and ``forward`` share one run of the analysis transform g_a on the same
    input (every architecture here runs g_a once on x in both): the entropy estimate then
    costs only the entropy models, not a second encoder pass, and the encode time that
    ``compress`` measures still includes g_a."""
    from torch import nn

    class Once(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner, self.key, self.value = inner, None, None

        def forward(self, x: Any) -> Any:
            if self.key is not x:
                self.key, self.value = x, self.inner(x)
            return self.value

    return _swapped(net, "g_a", Once(net.g_a))


def _without_synthesis(net: Any) -> contextlib.AbstractContextManager:
    """The estimate needs the forward pass's likelihoods, not its x_hat: skip g_s."""
    from torch import nn

    return _swapped(net, "g_s", nn.Identity())


def is_suite_checkpoint(source: str) -> bool:
    """A checkpoint of the suite's training loop (or its zoo), not CompressAI's layout."""
    return source.startswith("zoo:") or source.endswith(".safetensors")


def _now(torch: Any, device: Any) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


for _arch in ARCHITECTURES:
    register_method(_arch)(
        type(
            f"CompressAI_{ARCHITECTURES[_arch]}",
            (CompressAICodec,),
            {
                "name": _arch,
                "__module__": __name__,
                "description": f"CompressAI {_arch} (pretrained=Q, or :CHECKPOINT)",
            },
        )
    )
