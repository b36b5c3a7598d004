"""Declarative comparison specs (``benchmarks/specs/*.toml``): validated on load, expanded
into jobs.

A spec names its data, a shared training config, the evaluation passes, named budget
profiles and the arms. An arm is either a registered model (trained, or loaded from
``weights``) with its config (``set``), training overrides (``train``), seeds and a grid
(``grid = { beta = [0.5, 1, 2] }``: any model-config or ``TrainConfig`` field, every
combination one job), a codec (``codec = "jpeg"``, ``quality = "10:90:20"``), evaluated
once, or a synthetic-source experiment (``experiment = "gaussian"``,
:mod:`benchmarks.studies.rd_experiments`): a small β-VAE trained and measured against the source's
R(D), its ``train`` and ``grid`` keys the experiment's settings (``beta``, ``steps``...).
:func:`expand` turns a spec and a profile into :class:`SweepJob` s, each with a stable id:
a hash of its resolved config, so the same job has the same id in every run and on every
machine.

Each evaluation pass is ``likelihood`` (split-level ELBO, IWAE, KL, I(x;z):
:func:`benchmarks.runs.model_runs.eval_to`) or ``codec`` (per-image real bitstreams and image
metrics: :func:`benchmarks.runs.codec_runs.evaluate_to`). Codecs and CompressAI nets take only the
codec passes.

``plugins = ["my_package.codecs", "plugins/my_model.py"]`` names modules or files (relative
to the spec) that register the user's own models, methods and metrics before the arms are
checked; the sweep's workers import them again.

Every key and value is checked when the spec loads, before any job trains: unknown sections
and keys, a ``train`` key that is not a ``TrainConfig`` field or a ``set`` key that is not a
field of the arm's model config, a value of the wrong type or out of range (``steps = -5``,
``lr = "fast"``, ``grid = { beta = ["a", 1] }``), a codec arm's values out of its range, an
unknown metric, and an arm or a grid value given twice are each one
:class:`~benchmarks.errors.BenchError` naming the key and its line.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from baselines.method import MethodError, MethodRequest, plan
from benchmarks.datasets import DatasetView, is_image_dataset
from benchmarks.errors import BenchError
from benchmarks.metrics import METRICS
from benchmarks.runs.experiments import EXPERIMENTS
from benchmarks.runs.spec_file import read_spec_file
from benchmarks.runs.store import job_id
from vlae_models.config import TrainConfig, check_value, field_defaults, make_config, validate
from vlae_models.core import ModelError, get_entry
from vlae_models.registry import PluginError, load_plugin
from vlae_models.zoo import weights_digest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Head(_Strict):
    name: str
    title: str = ""
    paper: str = ""
    units: str = "nats per image"
    note: str = ""  # shown at the top of the sweep's report (what a reader must know)


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
    metrics: list[str] | None = None  # codec passes: opt-in metrics beside the default set


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
    experiment: str | None = (
        None  # a synthetic-source experiment of benchmarks.studies.rd_experiments
    )
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
    plugins: list[str] = Field(default_factory=list)  # modules or .py files to load first
    data: Data = Data()
    train: dict[str, Any] = Field(default_factory=dict)
    eval: Evaluation = Evaluation()
    profiles: dict[str, Profile] = Field(default_factory=dict)
    expectations: Expectations = Expectations()
    arms: list[Arm] = Field(min_length=1)
    references: dict[str, dict[str, float]] = Field(default_factory=dict)
    _locator: Locator | None = PrivateAttr(default=None)

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
        return self.arms[self.arm_index(name)]

    def arm_index(self, name: str) -> int:
        for index, arm in enumerate(self.arms):
            if arm.name == name:
                return index
        raise BenchError(f"{self.name} has no arm {name!r}; arms: {[a.name for a in self.arms]}")

    def locate(self, loc: tuple) -> str:
        """``path:line: key`` of a location in the spec's file (the name alone when built in
        code rather than loaded)."""
        return self._locator(loc) if self._locator is not None else f"{self.name}: {loc}"


CADENCE = {"checkpoint_every", "log_every", "eval_every", "progress", "device"}
LATER_PASS_FIELDS = {"rate_kinds", "metrics"}


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

    @property
    def model_is_codec(self) -> bool:
        """A CompressAI net: evaluated per image as its own method, with no likelihood."""
        return self.model is not None and _is_codec_model(self.model)


def _is_codec_model(model: str) -> bool:
    return bool(getattr(get_entry(model).model_cls, "is_compressai", False))


def weights_sha256(ref: str | None) -> str | None:
    """The digest of a weights file (``zoo:NAME`` or a path), so retrained weights under the
    same name are another job; None when there is none (a missing file fails when run)."""
    if ref is None:
        return None
    try:
        return weights_digest(ref)
    except ModelError:
        return None


def job_folder(arm: str, dataset: str | None, point: tuple, seed: int | None) -> str:
    """``[DATASET/]ARM[-KEYVALUE...][-sSEED]``: readable and unique within a spec."""
    grid = "".join(f"-{key}{value:g}" if isinstance(value, float | int) else
                   f"-{key}{value}" for key, value in point)  # fmt: skip
    name = f"{arm}{grid}" + (f"-s{seed}" if seed is not None else "")
    return f"{dataset}/{name}" if dataset else name


def load_spec(path: Path | str) -> Spec:
    """Read and validate a spec (loading its plugins first); any problem is one BenchError
    naming the key and its line."""
    path = Path(path)
    text, raw = read_spec_file(path)
    where = Locator(path, text)
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise BenchError(f"{where(tuple(first['loc']))}: {first['msg']}") from None
    spec._locator = where
    for index, ref in enumerate(spec.plugins):
        try:
            load_plugin(_plugin_path(ref, path.parent))
        except PluginError as err:
            raise BenchError(f"{where(('plugins', index))}: {err}") from None
    names: dict[str, int] = {}
    for index, arm in enumerate(spec.arms):
        if arm.name in names:
            first = where.line(("arms", names[arm.name], "name"))
            raise BenchError(
                f"{where(('arms', index, 'name'))}: arm {arm.name!r} is given twice (first "
                f"on line {first})"
            )
        names[arm.name] = index
    for profile_name, profile in spec.profiles.items():
        for name in set(profile.arms) - set(names):  # a typo would silently drop a budget
            raise BenchError(
                f"{where(('profiles', profile_name, 'arms', name))}: no arm {name!r}; arms: "
                f"{sorted(names)}"
            )
    _check_tables(spec, spec.train, ("train",), TRAINING, where)
    for name, profile in spec.profiles.items():
        _check_tables(spec, profile.train, ("profiles", name, "train"), TRAINING, where)
    for index, arm in enumerate(spec.arms):
        _check_arm(spec, index, arm, where)
    _check_passes(spec, where)
    return spec


def _plugin_path(ref: str, folder: Path) -> str:
    """A plugin file is named relative to the spec; a module by its import name."""
    looks_like_file = ref.endswith(".py") or "/" in ref
    return str((folder / ref).resolve()) if looks_like_file and not Path(ref).is_absolute() else ref


class Locator:
    """``path:line: key.path`` for a location in the spec (a validation error's ``loc``)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def __call__(self, loc: tuple) -> str:
        return f"{self.path}:{self.line(loc)}: {'.'.join(map(str, loc))}"

    def line(self, loc: tuple) -> int | str:
        return _line_of(self.text, loc)


# A table's allowed keys: (what to call them in an error, {key: the config class that checks
# its value, or None for experiment settings, which only take numbers})
Allowed = tuple[str, dict[str, type | None]]
TRAINING: Allowed = ("TrainConfig", dict.fromkeys(field_defaults(TrainConfig), TrainConfig))


def _check_tables(spec: Spec, table: dict, loc: tuple, allowed: Allowed, where: Locator) -> None:
    """Every key a field of ``allowed``, every value (every grid value) one it accepts."""
    what, fields = allowed
    grid = loc[-1] == "grid"
    for key, value in table.items():
        if key not in fields:
            raise BenchError(f"{where((*loc, key))}: not a field of {what}")
        values = value if grid else [value]
        if grid and not values:
            raise BenchError(f"{where((*loc, key))}: the grid has no values")
        for item in values:
            problem = _check_one(fields[key], key, item)
            if problem:
                raise BenchError(f"{where((*loc, key))}: {problem}")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise BenchError(f"{where((*loc, key))}: {repeated[0]!r} is given twice (each grid "
                             "value is one job)")  # fmt: skip


def _check_one(config_cls: type | None, key: str, value: Any) -> str | None:
    if config_cls is not None:
        return check_value(config_cls, key, value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"an experiment setting is a number, got {value!r}"
    return None


def _check_arm(spec: Spec, index: int, arm: Arm, where: Locator) -> None:
    """The arm's model, codec or experiment exists, and its tables (``train``, ``set``,
    ``grid``, the profiles' budgets for it) hold fields and values it accepts."""
    budgets = [(name, p.arms[arm.name]) for name, p in spec.profiles.items() if arm.name in p.arms]
    here = ("arms", index)
    if arm.codec is not None:
        _check_codec(arm, index, where)
        return
    if arm.experiment is not None:
        if arm.experiment not in EXPERIMENTS:
            raise BenchError(
                f"{where((*here, 'experiment'))}: unknown experiment {arm.experiment!r}; "
                f"experiments: {sorted(EXPERIMENTS)}"
            )
        settings = EXPERIMENTS[arm.experiment].settings
        train = grid = ("experiment settings", dict.fromkeys(settings))
    else:
        try:
            config_cls = get_entry(arm.model).config_cls
        except ModelError as err:
            raise BenchError(f"{where((*here, 'model'))}: {err}") from None
        model = (config_cls.__name__, dict.fromkeys(field_defaults(config_cls), config_cls))
        train = TRAINING
        grid = (f"{model[0]} or TrainConfig", {**model[1], **TRAINING[1]})
        _check_tables(spec, arm.set, (*here, "set"), model, where)
        _check_weights_template(arm, budgets, where, index)
    _check_tables(spec, arm.train, (*here, "train"), train, where)
    _check_tables(spec, arm.grid, (*here, "grid"), grid, where)
    for name, budget in budgets:
        base = ("profiles", name, "arms", arm.name)
        _check_tables(spec, budget.train, (*base, "train"), train, where)
        if budget.grid is not None:
            _check_tables(spec, budget.grid, (*base, "grid"), grid, where)


def _check_weights_template(
    arm: Arm, budgets: list[tuple[str, ArmBudget]], where: Locator, index: int
) -> None:
    """``weights = "zoo:NAME-{beta}"`` takes its values from the grid: each ``{key}`` must be
    a key of the grid that the arm runs with (its own, or a profile's that replaces it)."""
    contexts = [(("arms", index, "weights"), arm.weights, arm.grid)]
    for name, budget in budgets:
        grid = arm.grid if budget.grid is None else budget.grid
        loc = ("profiles", name, "arms", arm.name, "weights") if budget.weights else contexts[0][0]
        contexts.append((loc, budget.weights or arm.weights, grid))
    for loc, template, grid in contexts:
        names = {n for _, n, _, _ in string.Formatter().parse(template or "") if n is not None}
        missing = sorted(names - set(grid))
        if missing:
            raise BenchError(f"{where(loc)}: {{{missing[0]}}} is not a key of the arm's grid")


def _check_codec(arm: Arm, index: int, where: Locator) -> None:
    """A codec arm's method exists and its values are in range, as ``-c`` would check."""
    request = MethodRequest.parse(arm.codec)
    key = "quality" if arm.quality is not None else "codec"
    try:
        plan([request], arm.quality)
    except MethodError as err:
        raise BenchError(f"{where(('arms', index, key))}: {err}") from None
    except (ModelError, BenchError, OSError) as err:  # a checkpoint it names is missing
        raise BenchError(f"{where(('arms', index, 'codec'))}: {err}") from None


def _check_passes(spec: Spec, where: Locator) -> None:
    """Every pass an arm names exists; every pass override is a pass's field; every metric
    a pass asks for is registered."""
    tables = [(("eval", "passes", name), p.model_dump()) for name, p in spec.eval.passes.items()]
    for index, arm in enumerate(spec.arms):
        for name in arm.passes or []:
            if name not in spec.eval.passes:
                raise BenchError(f"{where(('arms', index, 'passes'))}: no evaluation pass "
                                 f"{name!r}; passes: {sorted(spec.eval.passes)}")  # fmt: skip
        tables += [(("arms", index, "eval", n), f) for n, f in arm.eval.items()]
    for name, profile in spec.profiles.items():
        tables += [(("profiles", name, "eval", n), f) for n, f in profile.eval.items()]
        for arm, budget in profile.arms.items():
            tables += [(("profiles", name, "arms", arm, "eval", n), f)
                       for n, f in budget.eval.items()]  # fmt: skip
    for loc, fields in tables:
        if loc[-1] not in spec.eval.passes:
            raise BenchError(f"{where(loc)}: no evaluation pass {loc[-1]!r}; passes: "
                             f"{sorted(spec.eval.passes)}")  # fmt: skip
        for key in fields:
            if key not in EvalPass.model_fields:
                raise BenchError(f"{where((*loc, key))}: not a field of an evaluation pass "
                                 f"({', '.join(EvalPass.model_fields)})")  # fmt: skip
        try:
            EvalPass.model_validate({**spec.eval.passes[loc[-1]].model_dump(), **fields})
        except ValidationError as err:
            first = err.errors()[0]
            raise BenchError(f"{where((*loc, *first['loc']))}: {first['msg']}") from None
        for metric in fields.get("metrics") or []:
            if metric not in METRICS:
                raise BenchError(f"{where((*loc, 'metrics'))}: unknown metric {metric!r}; "
                                 f"metrics: {', '.join(METRICS)}")  # fmt: skip


def expand(spec: Spec, profile: str | None = None, only: list[str] | None = None) -> list[SweepJob]:
    """The spec's jobs: arms x datasets x grid points x seeds, with the profile's budget.

    The training config is, in order of precedence: the seed, the grid point, the profile's
    budget for the arm, the arm's ``train``, the profile's ``train``, the spec's ``train``.
    Grid keys that are TrainConfig fields go to the training config, the others to the model
    config. Pass settings: the profile's for the arm, the arm's, the profile's, the spec's.
    Folders are ``ARM[-grid]-sSEED``, under ``DATASET/`` when the profile runs several
    datasets. Two jobs with one id (two arms that are the same job) are refused: each job
    runs once.
    """
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
                    {"rd": {"kind": "experiment"}}, experiment=arm.experiment, folder=folder,
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
            if weights is None:
                _check_training(spec, arm, profile, train)
            jobs.append(SweepJob(
                arm.name, dataset, seed, point, arm.model, {**arm.set, **grid_model}, train,
                passes, train_split=train_split,
                weights=weights.format(**dict(point)) if weights else None,
                folder=folder, label=arm.title,
            ))  # fmt: skip
    _refuse_twins(spec, jobs)
    return jobs


def _check_training(spec: Spec, arm: Arm, profile: str | None, train: dict[str, Any]) -> None:
    """The training config a job resolves to, whole: what no single key shows (``epochs`` in
    the spec and ``steps`` in a profile) is refused before any job trains."""
    try:
        validate(make_config(TrainConfig, train, "training config"))
    except ModelError as err:
        where = spec.locate(("arms", spec.arm_index(arm.name)))
        with_profile = f" with profile {profile!r}" if profile else ""
        raise BenchError(f"{where}: arm {arm.name!r}{with_profile}: {err}") from None


def _refuse_twins(spec: Spec, jobs: list[SweepJob]) -> None:
    """One job per id and per folder: the same job twice would run twice, two workers
    would share its folder, and its rows would count twice."""
    seen: dict[str, SweepJob] = {}
    for job in jobs:
        for key in (job.job_id, job.folder):
            first = seen.setdefault(key, job)
            if first is not job:
                where = spec.locate(("arms", spec.arm_index(job.arm)))
                raise BenchError(
                    f"{where}: arm {job.arm!r} gives the same job as arm {first.arm!r} "
                    f"({first.folder}, id {first.job_id}); each job runs once: remove one"
                )


def _passes(
    spec: Spec, profile: Profile, arm: Arm, budget: ArmBudget, dataset: str
) -> dict[str, dict[str, Any]]:
    """Each evaluation pass the arm takes, resolved: codecs and CompressAI nets take only
    the codec passes."""
    codec_only = arm.codec is not None or _is_codec_model(arm.model)
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
