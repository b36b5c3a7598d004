"""FID and KID per method setting: every item coded by the method (in this process, as the
one path's workers code it), the reconstructions' 256-px patches scored together against the
originals' (:mod:`benchmarks.metrics.realism`), one row per setting with its mean coded bpp."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from baselines.method import MethodRequest, plan
from benchmarks.datasets import NamedImage
from benchmarks.metrics.image import bits_per_pixel
from benchmarks.metrics.realism import realism_scores

__all__ = ["realism"]


def realism(
    items: Sequence[NamedImage],
    methods: Sequence[str | MethodRequest],
    network: nn.Module,
    *,
    quality: str | None = None,
    device: str = "cpu",
    kid_subset: int = 50,
) -> pd.DataFrame:
    """One row per (method, value): ``fid``, ``kid``, ``kid_std``, ``patches`` and the mean
    ``bpp`` of its codes, from the reconstructions of ``items``."""
    settings, _ = plan(methods, quality)
    originals = [item.pixels for item in items]
    rows = []
    for setting in settings:
        method = setting.build()
        method.setup(device)
        codings = [c for start in range(0, len(originals), method.max_items)
                   for c in method.code(originals[start : start + method.max_items])]  # fmt: skip
        scores = realism_scores(originals, [c.reconstruction for c in codings], network,
                                kid_subset=kid_subset)  # fmt: skip
        pairs = zip(codings, originals, strict=True)
        bpp = [bits_per_pixel(c.n_bytes, *o.shape[:2]) for c, o in pairs if c.n_bytes is not None]
        rows.append({"method": setting.label, "param": setting.param, "value": setting.value,
                     "images": len(items), "bpp": float(np.mean(bpp)) if bpp else np.nan,
                     **scores})  # fmt: skip
    return pd.DataFrame(rows)
