"""Declarative comparison specs (``benchmarks/specs/*.toml``): validated on load, expanded
into jobs.

A spec names its data, a shared training config, the evaluation, named budget profiles and
the arms. Each arm is a registered model with its config (``set``) and training overrides
(``train``), its seeds, and a grid (``grid = { beta = [0.5, 1, 2] }``: any model-config or
``TrainConfig`` field, every combination one job). :func:`expand` turns a spec and a profile
into :class:`SweepJob` s, each with a stable id: a hash of its resolved config, so the same
job has the same id in every run and on every machine.

Every key is checked when the spec loads: unknown sections and keys, a wrong type, a
``train`` key that is not a ``TrainConfig`` field or a ``set`` key that is not a field of the
arm's model config are one :class:`~benchmarks.errors.BenchError` naming the key and its line.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class Evaluation(_Strict):
    """``split`` and the paper's importance-sample count; the other keys are ``evaluate``
    keywords (``iw_samples``, ``batch_size``, ``max_iw_rows``...)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    split: str = "test"
    iw_samples_paper: int | None = None


class Profile(_Strict):
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)


class Arm(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str
    label: str = ""
    set: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    paper: dict[str, dict[str, Any]] = Field(default_factory=dict)
    expect: dict[str, Any] = Field(default_factory=dict)

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


@dataclass(frozen=True)
class SweepJob:
    """One (arm, dataset, seed, grid point): what to train and evaluate, fully resolved."""

    arm: str
    dataset: str
    seed: int
    point: tuple[tuple[str, Any], ...]  # the grid values, in the arm's grid order
    model: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    eval_config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """What determines the job's numbers: logging and checkpoint cadence do not."""
        from vlae_models.train import _RESUMABLE_CHANGES

        cadence = (_RESUMABLE_CHANGES - {"steps", "epochs"}) | {"device"}
        train = {k: v for k, v in self.train_config.items() if k not in cadence}
        return {
            "model": self.model, "dataset": self.dataset, "model_config": self.model_config,
            "train_config": train, "eval": self.eval_config,
        }  # fmt: skip

    @property
    def job_id(self) -> str:
        return job_id("sweep-job", self.config)

    @property
    def folder(self) -> str:
        """``ARM-DATASET[-KEYVALUE...]-sSEED``: readable and unique within a spec."""
        grid = "".join(f"-{key}{value:g}" if isinstance(value, float | int) else
                       f"-{key}{value}" for key, value in self.point)  # fmt: skip
        return f"{self.arm}-{self.dataset}{grid}-s{self.seed}"


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
    for index, arm in enumerate(spec.arms):
        _check_fields(path, text, spec, index, arm)
    return spec


def _check_fields(path: Path, text: str, spec: Spec, index: int, arm: Arm) -> None:
    """Every ``train`` key a TrainConfig field, every ``set`` key a model-config field, every
    grid key one of the two, and the model registered."""
    from vlae_models.config import field_defaults
    from vlae_models.core import ModelError, get_entry
    from vlae_models.train import TrainConfig

    try:
        entry = get_entry(arm.model)
    except ModelError as err:
        raise BenchError(f"{path}:{_line_of(text, ('arms', index, 'model'))}: {err}") from None
    training = ("TrainConfig", set(field_defaults(TrainConfig)))
    model = (entry.config_cls.__name__, set(field_defaults(entry.config_cls)))
    either = (f"{model[0]} or TrainConfig", training[1] | model[1])
    tables = [
        (("train",), spec.train, training),
        (("arms", index, "train"), arm.train, training),
        (("arms", index, "set"), arm.set, model),
        (("arms", index, "grid"), arm.grid, either),
        *((("profiles", name, "train"), p.train, training) for name, p in spec.profiles.items()),
    ]
    for where, table, (what, allowed) in tables:
        for key, value in table.items():
            loc = (*where, key)
            if key not in allowed:
                raise BenchError(f"{_where(path, text, loc)}: not a field of {what}")
            if where[-1] == "grid" and not value:
                raise BenchError(f"{_where(path, text, loc)}: the grid has no values")


def _where(path: Path, text: str, loc: tuple) -> str:
    return f"{path}:{_line_of(text, loc)}: {'.'.join(map(str, loc))}"


def expand(spec: Spec, profile: str | None = None, only: list[str] | None = None) -> list[SweepJob]:
    """The spec's jobs: arms x datasets x grid points x seeds, with the profile's budget.

    The training config is, in order of precedence: the grid point, the arm's ``train``, the
    profile's ``train``, the spec's ``train``, then ``seed``. Grid keys that are TrainConfig
    fields go to the training config, the others to the model config.
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
    evaluation = {**spec.eval.model_dump(exclude={"iw_samples_paper"}), **chosen.eval}
    datasets = spec.data.datasets or [None]
    jobs = []
    for arm in arms:
        keys = list(arm.grid)
        for dataset, values, seed in itertools.product(
            datasets, itertools.product(*arm.grid.values()), arm.seeds
        ):
            point = tuple(zip(keys, values, strict=True))
            grid_train = {k: v for k, v in point if k in train_keys}
            grid_model = {k: v for k, v in point if k not in train_keys}
            train = {**spec.train, **chosen.train, **arm.train, **grid_train, "seed": seed}
            jobs.append(SweepJob(
                arm.name, str(dataset), seed, point, arm.model, {**arm.set, **grid_model},
                train, {**evaluation, "train_split": spec.data.train_split},
            ))  # fmt: skip
    return jobs


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
