"""vlae-bench: the public API for scripts, notebooks and plugins.

Everything a user needs is importable from here (``from benchmarks import evaluate_to``);
the names are loaded when first used, so ``import benchmarks`` stays instant. The
tutorial is ``docs/api.md`` (a test runs its code).

- **Protocols**: :class:`Codec` (``encode(image) -> bytes``, ``decode(bytes) -> image``),
  :class:`Method` (``code(images) -> [Coding]``: reconstructions and the rates it states),
  :class:`LatentModel` (``forward(x) -> ModelOutput``: per-example rate and distortion in
  nats; optional ``compress``/``decompress``) and :class:`Metric` (original and
  reconstruction to named columns, each better ``higher`` or ``lower``).
- **Registration**: :func:`register_method`, :func:`register_model`, :func:`register_metric`;
  :func:`load_plugin` imports a module or file that registers (``--plugin`` on the command
  line). Installed packages use the entry-point groups ``vlae_bench.models``,
  ``vlae_bench.methods`` and ``vlae_bench.metrics``.
- **Items and datasets**: :class:`NamedImage`, :func:`load_items`, :func:`load_pixels`.
- **Running**: :func:`evaluate` (items and methods to a table), :func:`evaluate_to` (into a
  run folder that resumes), :func:`train_to`, :func:`eval_to`, :func:`realism` (FID and
  KID per method setting, with :func:`inception_from_file`).
- **Results and reports**: :func:`read_results`, :func:`aggregate`, :func:`render_report`.
- **Specs and sweeps**: :func:`load_spec`, :func:`expand`, :func:`sweep_to`, :class:`Runtime`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # protocols and what they return
    "Method": "baselines.method",
    "Coding": "baselines.method",
    "ParamSpec": "baselines.method",
    "MethodRequest": "baselines.method",
    "MethodError": "baselines.method",
    "Codec": "baselines.codec",
    "LatentModel": "vlae_models.core",
    "ModelOutput": "vlae_models.core",
    "ModelError": "vlae_models.errors",
    "ModelConfig": "vlae_models.config",
    "TrainConfig": "vlae_models.config",
    "config_dataclass": "vlae_models.config",
    "likelihood_from_config": "vlae_models.likelihoods",
    "compress_vectors": "vlae_models.entropy",
    "decompress_vectors": "vlae_models.entropy",
    "Metric": "benchmarks.metrics",
    "MetricError": "benchmarks.metrics",
    # registration
    "register_method": "baselines.method",
    "register_model": "vlae_models.core",
    "register_metric": "benchmarks.metrics",
    "load_plugin": "vlae_models.registry",
    "PluginError": "vlae_models.registry",
    # items and datasets
    "NamedImage": "benchmarks.datasets",
    "load_items": "benchmarks.datasets",
    "DatasetError": "benchmarks.datasets",
    "load_pixels": "benchmarks.datasets.pixels",
    # running
    "evaluate": "benchmarks.evaluation",
    "evaluate_to": "benchmarks.runs.codec_runs",
    "train_to": "benchmarks.runs.model_runs",
    "train_config": "benchmarks.runs.model_runs",
    "eval_to": "benchmarks.runs.model_runs",
    "realism": "benchmarks.evaluation.realism",
    "inception_from_file": "benchmarks.metrics.realism",
    "BenchError": "benchmarks.errors",
    # results and reports
    "read_results": "benchmarks.results",
    "aggregate": "benchmarks.results",
    "load_runs": "benchmarks.results",
    "render_report": "benchmarks.report",
    # specs and sweeps
    "load_spec": "benchmarks.runs.spec",
    "expand": "benchmarks.runs.spec",
    "sweep_to": "benchmarks.runs.sweep",
    "run_sweep": "benchmarks.runs.sweep",
    "Runtime": "benchmarks.runs.runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from baselines.codec import Codec
    from baselines.method import (
        Coding,
        Method,
        MethodError,
        MethodRequest,
        ParamSpec,
        register_method,
    )
    from benchmarks.datasets import DatasetError, NamedImage, load_items
    from benchmarks.datasets.pixels import load_pixels
    from benchmarks.errors import BenchError
    from benchmarks.evaluation import evaluate
    from benchmarks.metrics import Metric, MetricError, register_metric
    from benchmarks.report import render_report
    from benchmarks.results import aggregate, load_runs, read_results
    from benchmarks.runs.codec_runs import evaluate_to
    from benchmarks.runs.model_runs import eval_to, train_config, train_to
    from benchmarks.runs.runtime import Runtime
    from benchmarks.runs.spec import expand, load_spec
    from benchmarks.runs.sweep import run_sweep, sweep_to
    from vlae_models.config import ModelConfig, TrainConfig, config_dataclass
    from vlae_models.core import LatentModel, ModelOutput, register_model
    from vlae_models.entropy import compress_vectors, decompress_vectors
    from vlae_models.errors import ModelError
    from vlae_models.likelihoods import likelihood_from_config
    from vlae_models.registry import PluginError, load_plugin
