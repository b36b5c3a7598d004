"""How a job runs, as opposed to what it computes: nothing here is part of a job's id."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vlae_models.registry import Origin, portable_origins


@dataclass(frozen=True)
class Runtime:
    """The data folder, device, torch threads and ``torch.compile`` switch of a job, and the
    plugins a worker process imports again before it runs one (:func:`with_plugins`)."""

    data_dir: Path | None = None
    device: str = "cpu"
    threads: int = 1
    compile: bool = False
    plugins: tuple[Origin, ...] = ()

    def with_plugins(self) -> Runtime:
        """This runtime carrying, beside its own, the plugins this process has loaded or
        registered."""
        plugins = tuple(dict.fromkeys([*self.plugins, *portable_origins()]))
        return dataclasses.replace(self, plugins=plugins)
