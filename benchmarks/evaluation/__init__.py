"""The one evaluation path: items and methods in, scored rows out.

:func:`evaluate` is the path as a function: plan the methods, code every item, score every
reconstruction, return the rows as a table. To keep the rows in a run folder that resumes,
use :func:`benchmarks.runs.codec_runs.evaluate_to`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from baselines.method import MethodRequest, plan
from benchmarks.datasets import NamedImage
from benchmarks.evaluation.engine import run_tasks
from benchmarks.metrics import column_info, metric_names
from benchmarks.results import make_frame

__all__ = ["evaluate"]


def evaluate(
    items: Sequence[NamedImage],
    methods: Sequence[str | MethodRequest],
    *,
    quality: str | None = None,
    metrics: Sequence[str] | None = None,
    workers: int | None = 1,
    device: str = "cpu",
    dataset: str = "items",
    progress: bool = False,
) -> pd.DataFrame:
    """Code ``items`` with each method (``"jpeg=30,70"``, ``"model:PATH"``, ``"my-codec"``)
    and score every reconstruction with the default metrics plus ``metrics``; one row per
    (method, value, item, rate kind). ``workers`` > 1 runs spawned processes, which import
    this process's plugins (registered classes included) again."""
    settings, _ = plan(methods, quality)
    scored = metric_names(metrics)
    rows = []
    common = {"dataset": dataset, "split": None}
    for part in run_tasks(items, settings, common=common, workers=workers, device=device,
                          metrics=scored, progress=progress):  # fmt: skip
        rows += part
    frame = make_frame(rows)
    frame.attrs["metric_columns"] = column_info(scored)
    return frame
