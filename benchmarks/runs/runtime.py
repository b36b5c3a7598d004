"""How a job runs, as opposed to what it computes: nothing here is part of a job's id."""

from __future__ import annotations

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
        """This runtime carrying the plugins this process has loaded or registered."""
        return Runtime(self.data_dir, self.device, self.threads, self.compile,
                       tuple(portable_origins()))  # fmt: skip
