"""One small registry idiom for models and methods alike.

A :class:`Registry` maps names to entries that modules of one package add with a decorator.
On the first lookup it imports every module of that package once, so adding a module (a new
model family, a new codec) needs no edit anywhere else: no loader, no deny-list. Modules of
such a package must therefore be cheap to import; heavy libraries are imported where they are
used (see ``baselines/models.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """``name -> entry`` for the modules of ``package``; unknown names raise ``error``."""

    def __init__(self, what: str, package: str, error: type[Exception]) -> None:
        self.what, self.package, self.error = what, package, error
        self._entries: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""

        def wrap(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise self.error(f"{self.what} '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return wrap

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        root = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(root.__path__):
            importlib.import_module(f"{self.package}.{info.name}")

    def __getitem__(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise self.error(f"unknown {self.what} '{name}'; available: {known}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return [(name, self[name]) for name in self]
