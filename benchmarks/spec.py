"""Declarative comparison specs (``benchmarks/specs/*.toml``): validated on load, expanded
into jobs.

A spec names its data, a shared training config, the evaluation passes, named budget
profiles and the arms. An arm is either a registered model (trained, or loaded from
``weights``) with its config (``set``), training overrides (``train``), seeds and a grid
(``grid = { beta = [0.5, 1, 2] }``: any model-config or ``TrainConfig`` field, every
combination one job), a codec (``codec = "jpeg"``, ``quality = "10:90:20"``), evaluated
once, or a synthetic-source experiment (``experiment = "gaussian"``,
:mod:`benchmarks.rd_experiments`): a small β-VAE trained and measured against the source's
R(D), its ``train`` and ``grid`` keys the experiment's settings (``beta``, ``steps``...).
:func:`expand` turns a spec and a profile into :class:`SweepJob` s, each with a stable id:
a hash of its resolved config, so the same job has the same id in every run and on every
machine.

Each evaluation pass is ``likelihood`` (split-level ELBO, IWAE, KL, I(x;z):
:func:`benchmarks.model_runs.eval_to`) or ``codec`` (per-image real bitstreams and image
metrics: :func:`benchmarks.evaluation.evaluate_to`). Codecs and CompressAI nets take only the
codec passes.

Every key is checked when the spec loads: unknown sections and keys, a wrong type, a
``train`` key that is not a ``TrainConfig`` field or a ``set`` key that is not a field of the
arm's model config are one :class:`~benchmarks.errors.BenchError` naming the key and its line.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmarks.errors import BenchError
from benchmarks.runs import job_id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Head(_Strict):
    name: str
    title: str = ""
    paper: str = ""
    units: str = "nats per image"


class Data(_Strict):
    datasets: list[str] = Field(default_factory=list)
    train_split: str = "train"
    entropy_nats: float | None = None  # the data's entropy, where known: R = H - D is drawn


class EvalPass(_Strict):
    """One evaluation of each job's model (or codec). ``dataset`` and ``split`` default to the
    job's dataset and the spec's ``eval.split``; ``limit`` spreads N items evenly over it."""

    kind: Literal["likelihood", "codec"] = "likelihood"
    dataset: str | None = None
    split: str | None = None
    limit: int | None = Field(None, ge=1)
    iw_samples: int = Field(0, ge=0)  # likelihood passes: k of the IWAE bound (0: ELBO only)
    batch_size: int = Field(256, ge=1)
    rate_kinds: list[Literal["coded", "kl", "estimate", "fixed", "prior"]] | None = None  # kept


class Evaluation(_Strict):
    split: str = "test"
    iw_samples_paper: int | None = None  # what the paper used, for the report
    passes: dict[str, EvalPass] = Field(default_factory=lambda: {"elbo": EvalPass()})


PassOverrides = dict[str, dict[str, Any]]  # pass name -> EvalPass fields


class ArmBudget(_Strict):
    """A profile's settings for one arm: its training budget, pass overrides, weights, and
    a grid that replaces the arm's (a smoke run of two β values)."""

    train: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] | None = None
    eval: PassOverrides = Field(default_factory=dict)
    weights: str | None = None


class Profile(_Strict):
    datasets: list[str] | None = None
    train_split: str | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    eval: PassOverrides = Field(default_factory=dict)
    arms: dict[str, ArmBudget] = Field(default_factory=dict)


class Arm(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str | None = None
    codec: str | None = None  # a method of `vlae-bench codecs --list`, NAME[=VALUES]
    experiment: str | None = None  # a synthetic-source experiment of benchmarks.rd_experiments
    quality: str | None = None  # the codec's quality sweep, as `--quality`
    weights: str | None = None  # skip training: zoo:NAME or a path; {key} takes grid values
    label: str = ""
    set: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    eval: PassOverrides = Field(default_factory=dict)
    passes: list[str] | None = None  # the evaluation passes this arm takes (default: all)
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    paper: dict[str, dict[str, Any]] = Field(default_factory=dict)
    expect: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _model_or_codec(self) -> Arm:
        if sum(x is not None for x in (self.model, self.codec, self.experiment)) != 1:
            raise ValueError("give exactly one of model = ..., codec = ... or experiment = ...")
        if self.experiment is not None and (self.set or self.weights or self.quality):
            raise ValueError("an experiment arm takes only train, grid and seeds")
        if self.codec is not None and (self.set or self.train or self.grid or self.weights):
            raise ValueError("a codec arm takes no set, train, grid or weights")
        if self.model is not None and self.quality is not None:
            raise ValueError("quality applies to codec arms")
        return self

    @property
    def title(self) -> str:
        return self.label or self.name


class Expectations(_Strict):
    checks: list[str] = Field(default_factory=list)


class Spec(_Strict):
    spec: Head
    data: Data = Data()
    train: dict[str, Any] = Field(default_factory=dict)
    eval: Evaluation = Evaluation()
    profiles: dict[str, Profile] = Field(default_factory=dict)
    expectations: Expectations = Expectations()
    arms: list[Arm] = Field(min_length=1)
    references: dict[str, dict[str, float]] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def paper(self) -> str:
        return self.spec.paper

    @property
    def split(self) -> str:
        return self.eval.split

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise BenchError(f"{self.name} has no arm {name!r}; arms: {[a.name for a in self.arms]}")


CADENCE = {"checkpoint_every", "log_every", "eval_every", "progress", "device"}
LATER_PASS_FIELDS = {"rate_kinds"}


@dataclass(frozen=True)
class SweepJob:
    """One (arm, dataset, seed, grid point): what to train and evaluate, fully resolved.

    A codec arm's job has ``codec`` set and no model, training or seed of its own.
    """

    arm: str
    dataset: str
    seed: int | None
    point: tuple[tuple[str, Any], ...]  # the grid values, in the arm's grid order
    model: str | None
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    passes: dict[str, dict[str, Any]]  # pass name -> resolved EvalPass fields
    train_split: str = "train"
    weights: str | None = None
    codec: str | None = None
    quality: str | None = None
    experiment: str | None = None
    folder: str = ""
    label: str = field(default="", compare=False)

    @property
    def config(self) -> dict[str, Any]:
        """What determines the job's numbers: logging and checkpoint cadence do not."""
        if self.codec is not None:
            return {"codec": self.codec, "quality": self.quality, "dataset": self.dataset,
                    "passes": self._pass_ids()}  # fmt: skip
        if self.experiment is not None:
            return {"experiment": self.experiment, "point": dict(self.point),
                    "settings": self.train_config}  # fmt: skip
        train = {k: v for k, v in self.train_config.items() if k not in CADENCE}
        config = {
            "model": self.model, "dataset": self.dataset, "train_split": self.train_split,
            "model_config": self.model_config, "train_config": train, "weights": self.weights,
            "passes": self._pass_ids(),
        }  # fmt: skip
        if self.weights is not None:
            config["weights_sha256"] = weights_sha256(self.weights)
        return config

    def _pass_ids(self) -> dict[str, dict[str, Any]]:
        """The passes as the id sees them: a field added to ``EvalPass`` after sweeps were
        committed counts only when set, so adding one keeps every existing job's id."""
        return {
            name: {k: v for k, v in fields.items() if k not in LATER_PASS_FIELDS or v is not None}
            for name, fields in self.passes.items()
        }

    @property
    def job_id(self) -> str:
        return job_id("sweep-job", self.config)

    @property
    def trains(self) -> bool:
        return self.model is not None and self.weights is None


def weights_sha256(ref: str | None) -> str | None:
    """The digest of a weights file (``zoo:NAME`` or a path), so retrained weights under the
    same name are another job; None when there is none (a missing file fails when run)."""
    if ref is None:
        return None
    from vlae_models.core import ModelError
    from vlae_models.zoo import resolve

    try:
        path = resolve(ref)
        return _file_digest(str(path), path.stat().st_mtime_ns)
    except (OSError, ModelError):
        return None


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def job_folder(arm: str, dataset: str | None, point: tuple, seed: int | None) -> str:
    """``[DATASET/]ARM[-KEYVALUE...][-sSEED]``: readable and unique within a spec."""
    grid = "".join(f"-{key}{value:g}" if isinstance(value, float | int) else
                   f"-{key}{value}" for key, value in point)  # fmt: skip
    name = f"{arm}{grid}" + (f"-s{seed}" if seed is not None else "")
    return f"{dataset}/{name}" if dataset else name


def load_spec(path: Path | str) -> Spec:
    """Read and validate a spec; any problem is one BenchError naming the key and its line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BenchError(f"no spec at {path}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BenchError(f"{path} is not valid TOML: {err}") from None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise BenchError(f"{_where(path, text, tuple(first['loc']))}: {first['msg']}") from None
    names = {arm.name for arm in spec.arms}
    for profile_name, profile in spec.profiles.items():
        for name in set(profile.arms) - names:  # a typo would silently drop a budget
            raise BenchError(
                f"{_where(path, text, ('profiles', profile_name, 'arms', name))}: no arm "
                f"{name!r}; arms: {sorted(names)}"
            )
    for index, arm in enumerate(spec.arms):
        _check_fields(path, text, spec, index, arm)
    return spec


def _check_fields(path: Path, text: str, spec: Spec, index: int, arm: Arm) -> None:
    """Every ``train`` key a TrainConfig field, every ``set`` key a model-config field, every
    grid key one of the two, every pass override a pass's field, and the model or codec
    registered."""
    from vlae_models.config import field_defaults
    from vlae_models.train import TrainConfig

    training = ("TrainConfig", set(field_defaults(TrainConfig)))
    budgets = [(name, p.arms[arm.name]) for name, p in spec.profiles.items() if arm.name in p.arms]
    tables = [
        (("train",), spec.train, training),
        *((("profiles", name, "train"), p.train, training) for name, p in spec.profiles.items()),
    ]
    if arm.experiment is not None:
        from benchmarks.rd_experiments import EXPERIMENTS, SETTINGS

        if arm.experiment not in EXPERIMENTS:
            raise BenchError(
                f"{_where(path, text, ('arms', index, 'experiment'))}: unknown experiment "
                f"{arm.experiment!r}; experiments: {sorted(EXPERIMENTS)}"
            )
        allowed = ("experiment settings", SETTINGS)
        tables += [
            (("arms", index, "train"), arm.train, allowed),
            (("arms", index, "grid"), arm.grid, allowed),
            *((("profiles", name, "arms", arm.name, "train"), b.train, allowed)
              for name, b in budgets),
            *((("profiles", name, "arms", arm.name, "grid"), b.grid, allowed)
              for name, b in budgets if b.grid is not None),
        ]  # fmt: skip
    elif arm.model is not None:
        config_cls = _model_entry(path, text, index, arm).config_cls
        model = (config_cls.__name__, set(field_defaults(config_cls)))
        either = (f"{model[0]} or TrainConfig", training[1] | model[1])
        tables += [
            (("arms", index, "train"), arm.train, training),
            (("arms", index, "set"), arm.set, model),
            (("arms", index, "grid"), arm.grid, either),
            *((("profiles", name, "arms", arm.name, "train"), b.train, training)
              for name, b in budgets),
            *((("profiles", name, "arms", arm.name, "grid"), b.grid, either)
              for name, b in budgets if b.grid is not None),
        ]  # fmt: skip
    else:
        from baselines.method import METHODS

        name = arm.codec.partition("=")[0].partition(":")[0].strip()
        if name not in METHODS:
            raise BenchError(
                f"{_where(path, text, ('arms', index, 'codec'))}: unknown codec {name!r}; "
                f"see `vlae-bench codecs --list`"
            )
    for where, table, (what, allowed) in tables:
        for key, value in table.items():
            loc = (*where, key)
            if key not in allowed:
                raise BenchError(f"{_where(path, text, loc)}: not a field of {what}")
            if where[-1] == "grid" and not value:
                raise BenchError(f"{_where(path, text, loc)}: the grid has no values")
    for name in arm.passes or []:
        if name not in spec.eval.passes:
            raise BenchError(
                f"{_where(path, text, ('arms', index, 'passes'))}: no evaluation pass "
                f"{name!r}; passes: {sorted(spec.eval.passes)}"
            )
    overrides = [(("arms", index, "eval"), arm.eval)] + [
        (("profiles", name, "arms", arm.name, "eval"), b.eval) for name, b in budgets
    ]
    if index == 0:
        overrides += [(("profiles", name, "eval"), p.eval) for name, p in spec.profiles.items()]
    for where, table in overrides:
        for pass_name, fields in table.items():
            if pass_name not in spec.eval.passes:
                raise BenchError(
                    f"{_where(path, text, (*where, pass_name))}: no evaluation pass "
                    f"{pass_name!r}; passes: {sorted(spec.eval.passes)}"
                )
            for key in fields:
                if key not in EvalPass.model_fields:
                    raise BenchError(
                        f"{_where(path, text, (*where, pass_name, key))}: not a field of an "
                        f"evaluation pass ({', '.join(EvalPass.model_fields)})"
                    )


def _model_entry(path: Path, text: str, index: int, arm: Arm):
    from vlae_models.core import ModelError, get_entry

    try:
        return get_entry(arm.model)
    except ModelError as err:
        raise BenchError(f"{path}:{_line_of(text, ('arms', index, 'model'))}: {err}") from None


def _where(path: Path, text: str, loc: tuple) -> str:
    return f"{path}:{_line_of(text, loc)}: {'.'.join(map(str, loc))}"


def expand(spec: Spec, profile: str | None = None, only: list[str] | None = None) -> list[SweepJob]:
    """The spec's jobs: arms x datasets x grid points x seeds, with the profile's budget.

    The training config is, in order of precedence: the seed, the grid point, the profile's
    budget for the arm, the arm's ``train``, the profile's ``train``, the spec's ``train``.
    Grid keys that are TrainConfig fields go to the training config, the others to the model
    config. Pass settings: the profile's for the arm, the arm's, the profile's, the spec's.
    Folders are ``ARM[-grid]-sSEED``, under ``DATASET/`` when the profile runs several
    datasets.
    """
    from vlae_models.config import field_defaults
    from vlae_models.train import TrainConfig

    if profile is not None and profile not in spec.profiles:
        raise BenchError(
            f"{spec.name} has no profile {profile!r}; profiles: {sorted(spec.profiles)}"
        )
    chosen = spec.profiles.get(profile) if profile else Profile()
    arms = [spec.arm(name) for name in only] if only else spec.arms
    train_keys = set(field_defaults(TrainConfig))
    datasets = chosen.datasets or spec.data.datasets
    if not datasets:
        raise BenchError(f"{spec.name} names no dataset ([data] datasets = [...])")
    nested = len(datasets) > 1
    train_split = chosen.train_split or spec.data.train_split
    jobs = []
    for arm in arms:
        budget = chosen.arms.get(arm.name, ArmBudget())
        grid = arm.grid if budget.grid is None else budget.grid
        keys = list(grid)
        models = arm.model is not None
        trained = (models and not (budget.weights or arm.weights)) or arm.experiment is not None
        for dataset, values, seed in itertools.product(
            datasets, itertools.product(*grid.values()), arm.seeds if trained else [None]
        ):
            point = tuple(zip(keys, values, strict=True))
            folder = job_folder(arm.name, dataset if nested else None, point, seed)
            if arm.experiment is not None:
                settings = {**arm.train, **budget.train, **dict(point), "seed": seed}
                jobs.append(SweepJob(
                    arm.name, dataset, seed, point, None, {}, settings,
                    {"rd": {"kind": "rd-theory"}}, experiment=arm.experiment, folder=folder,
                    label=arm.title,
                ))  # fmt: skip
                continue
            passes = _passes(spec, chosen, arm, budget, dataset)
            if not models:
                jobs.append(SweepJob(
                    arm.name, dataset, None, (), None, {}, {}, passes, codec=arm.codec,
                    quality=arm.quality, folder=folder, label=arm.title,
                ))  # fmt: skip
                continue
            grid_train = {k: v for k, v in point if k in train_keys}
            grid_model = {k: v for k, v in point if k not in train_keys}
            train = {**spec.train, **chosen.train, **arm.train, **budget.train, **grid_train,
                     "seed": seed}  # fmt: skip
            weights = budget.weights or arm.weights
            jobs.append(SweepJob(
                arm.name, dataset, seed, point, arm.model, {**arm.set, **grid_model}, train,
                passes, train_split=train_split,
                weights=weights.format(**dict(point)) if weights else None,
                folder=folder, label=arm.title,
            ))  # fmt: skip
    return jobs


def _passes(
    spec: Spec, profile: Profile, arm: Arm, budget: ArmBudget, dataset: str
) -> dict[str, dict[str, Any]]:
    """Each evaluation pass the arm takes, resolved: codecs and CompressAI nets take only
    the codec passes."""
    from benchmarks.datasets import DatasetView, is_image_dataset
    from vlae_models.compressai_nets import SIZES

    codec_only = arm.codec is not None or arm.model in SIZES
    resolved = {}
    for name, base in spec.eval.passes.items():
        if (codec_only and base.kind != "codec") or name not in (arm.passes or [name]):
            continue
        merged = {**base.model_dump(), **profile.eval.get(name, {}), **arm.eval.get(name, {}),
                  **budget.eval.get(name, {})}  # fmt: skip
        try:
            final = EvalPass.model_validate(merged)
        except ValidationError as err:
            first = err.errors()[0]
            raise BenchError(
                f"arm {arm.name}, pass {name}: {first['loc']}: {first['msg']}"
            ) from None
        target = final.dataset or dataset
        image_set = is_image_dataset(DatasetView.parse(target).name)  # items, no splits
        resolved[name] = {
            **final.model_dump(), "dataset": target,
            "split": None if image_set else final.split or spec.eval.split,
        }  # fmt: skip
    return resolved


def _line_of(text: str, loc: tuple) -> int | str:
    """The line of the key at ``loc`` (a validation error's location) in the TOML text: the
    ``[[arms]]`` entry it is in, then the first line after it that sets the key."""
    lines = text.splitlines()
    start, parts = 0, list(loc)
    if parts and parts[0] == "arms" and len(parts) > 1 and isinstance(parts[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip().startswith("[[arms]]")]
        if parts[1] < len(headers):
            start = headers[parts[1]]
        parts = parts[2:]
    for key in reversed([p for p in parts if isinstance(p, str)]):
        pattern = re.compile(
            rf'^\s*(\[[^\]]*\b{re.escape(key)}\b|"?{re.escape(key)}"?\s*=)|[{{,]\s*{re.escape(key)}\s*='
        )
        for i in range(start, len(lines)):
            if pattern.search(lines[i]):
                return i + 1
    return start + 1 if start else "?"
