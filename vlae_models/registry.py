"""One small registry idiom for models, methods and metrics, open to outside code.

A :class:`Registry` maps names to entries. Entries join it in three ways:

- **built-ins**: the package that owns the registry passes a ``builtins`` function that
  imports its own modules, whose decorators add their entries (no registry reaches into
  another package);
- **installed packages**: an entry-point group (``vlae_bench.models``,
  ``vlae_bench.methods``, ``vlae_bench.metrics``), read at the first lookup; each entry
  point names a class, registered under the entry point's name;
- **code at run time**: a module or ``.py`` file named with ``--plugin`` (:func:`load_plugin`),
  or a script or notebook that calls the registry's decorator itself.

Every entry records its :class:`Origin`: where a fresh process finds it again. Worker
processes (spawned pools, submitit jobs) are started with :func:`portable_origins` and call
:func:`restore`: a module is imported again by name, a file again by path, a class defined
in a notebook is shipped pickled by value (cloudpickle). Entry points need nothing: every
process reads them.

Problems with a plugin (it fails to import, its class lacks what the registry needs, its
name is taken) raise :class:`PluginError`, one line that names the plugin.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points as installed
from pathlib import Path
from typing import Any, Generic, TypeVar

import cloudpickle

T = TypeVar("T")
BUILTIN_PACKAGES = ("vlae_models", "baselines", "benchmarks")
SKIP_ENV = "VLAE_BENCH_SKIP_PLUGINS"  # distributions whose entry points are not loaded
_FILE_MODULE_PREFIX = "vlae_bench_plugin_"


class PluginError(Exception):
    """A plugin that cannot join a registry: printed as one line naming the plugin."""


@dataclass(frozen=True)
class Origin:
    """Where an entry comes from, in a form another process can follow.

    ``kind`` is ``builtin``, ``entry-point``, ``module`` (an importable name), ``file`` (a
    ``.py`` path) or ``pickled`` (cloudpickle bytes of ``(registry, name, object)``, for
    classes defined in a notebook or ``python -c``)."""

    kind: str
    ref: str | bytes
    label: str

    @property
    def portable(self) -> bool:
        """Whether a worker must be told about it (built-ins and entry points load anyway)."""
        return self.kind in ("module", "file", "pickled")


BUILTIN = Origin("builtin", "", "built-in")
_REGISTRIES: dict[str, Registry] = {}
_PLUGINS: dict[tuple[str, str | bytes], Origin] = {}  # loaded with load_plugin, in order
_FILE_PATHS: dict[str, Path] = {}  # synthetic module name -> the file it was loaded from
_CURRENT: list[Origin] = []  # the plugin being imported (its decorators register under it)


class Registry(Generic[T]):
    """``name -> entry``; unknown names raise ``error``.

    ``adopt(name, obj)`` turns what a decorator or an entry point gives (a class) into the
    stored entry, raising :class:`PluginError` when the object lacks what the registry
    needs; ``builtins()`` imports the owning package's modules; ``owner`` is the module that
    creates the registry (a worker imports it to re-register a pickled entry)."""

    def __init__(
        self,
        what: str,
        error: type[Exception],
        *,
        builtins: Callable[[], object],
        group: str,
        adopt: Callable[[str, Any], T],
        owner: str,
    ) -> None:
        self.what, self.error, self.group, self.owner = what, error, group, owner
        self._builtins, self._adopt = builtins, adopt
        self._entries: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._classes: dict[str, Any] = {}  # what each name was registered with
        self._state = "new"  # new -> loading -> loaded, or failed (the error is re-raised)
        self._failure: PluginError | None = None
        _REGISTRIES[what] = self

    # --- joining

    def add(self, name: str, origin: Origin | None = None) -> Callable[[Any], Any]:
        """Decorator: register the decorated class under ``name``; returns the class."""

        def wrap(obj: Any) -> Any:
            if self._classes.get(name) is obj:  # the same class again (an import repeated)
                return obj
            where = origin or origin_of(obj)
            try:
                entry = self._adopt(name, obj)
            except PluginError as err:
                raise PluginError(f"{where.label}: {err}") from None
            self._put(name, entry, where)
            self._classes[name] = obj
            return obj

        return wrap

    def _put(self, name: str, entry: T, origin: Origin) -> None:
        held = self._origins.get(name)
        if held is not None and (held.kind, held.ref) != (origin.kind, origin.ref):
            culprit, other = (held, origin) if origin.kind == "builtin" else (origin, held)
            raise PluginError(
                f"{culprit.label}: {self.what} name '{name}' is already taken by "
                f"{other.label}; rename it"
            )
        self._entries[name] = entry
        self._origins[name] = origin

    def _load(self) -> None:
        if self._state == "failed":
            assert self._failure is not None
            raise self._failure
        if self._state != "new":
            return
        self._state = "loading"
        try:
            self._builtins()
            for point in entry_points(self.group):
                self._load_entry_point(point)
        except Exception as err:  # every later lookup says it again: never a partial registry
            self._state, self._failure = "failed", err
            raise
        self._state = "loaded"

    def _load_entry_point(self, point: Any) -> None:
        """An installed package's entry: its origin is the package (every class it registers
        while it loads shares it), and its errors name the entry point too."""
        dist = getattr(point, "dist", None)
        name = dist.name if dist is not None else "an installed package"
        owner = f"{name} {dist.version}" if dist is not None else name
        origin = Origin("entry-point", f"{name}:{self.group}", f"plugin {owner}")
        where = f"{origin.label}, entry point {point.name} = {point.value}"
        try:
            with _importing(origin):
                obj = point.load()
        except PluginError:
            raise
        except Exception as err:
            raise PluginError(
                f"{where} failed to import: {type(err).__name__}: "
                f"{' '.join(str(err).split())} (uninstall it, or skip it with "
                f"{SKIP_ENV}={name})"
            ) from None
        try:
            self.add(point.name, origin)(obj)
        except PluginError as err:
            raise PluginError(str(err).replace(origin.label, where, 1)) from None

    # --- lookup

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

    def origin(self, name: str) -> Origin:
        """Where ``name`` comes from (built-in, or the plugin that registered it)."""
        self[name]
        return self._origins[name]


def import_submodules(package: str) -> None:
    """Import every module of ``package``: how a package hands its built-ins to a registry."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        importlib.import_module(f"{package}.{info.name}")


def entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` in installed distributions, minus those skipped with
    ``$VLAE_BENCH_SKIP_PLUGINS`` (comma-separated distribution names)."""

    skipped = {s.strip().lower() for s in os.environ.get(SKIP_ENV, "").split(",") if s.strip()}
    skipped.discard("vlae-bench")  # the suite's own entries (its R(D) experiments) always load
    points = sorted(installed(group=group), key=lambda p: p.name)
    return [p for p in points if getattr(p.dist, "name", "").lower() not in skipped]


# --- origins --------------------------------------------------------------------------------


def origin_of(obj: Any) -> Origin:
    """The origin of a class being registered: the plugin being imported, a built-in
    package, a module importable by name, the script run as ``__main__``, or (for a
    notebook or ``python -c``) the class itself, pickled by value. A class defined in a
    function is pickled too: importing its module again would not register it (nor one the
    module does not hold at its own name: :func:`portable_origins` checks, once it is bound)."""
    module = getattr(obj, "__module__", "") or ""
    if module.split(".")[0] in BUILTIN_PACKAGES:
        return BUILTIN
    if _CURRENT:
        return _CURRENT[-1]
    interactive = Origin("pickled", b"", f"{getattr(obj, '__qualname__', obj)!s} (interactive)")
    if "<locals>" in getattr(obj, "__qualname__", ""):
        return interactive
    if module in _FILE_PATHS:
        path = _FILE_PATHS[module]
        return Origin("file", str(path), f"plugin {path}")
    if module in ("__main__", "__mp_main__"):
        main = sys.modules.get(module)
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name not in ("__main__", "__mp_main__"):
            return Origin("module", spec.name, f"plugin {spec.name}")
        path = getattr(main, "__file__", None)
        if path and Path(path).is_file():  # not "<stdin>"
            resolved = Path(path).resolve()
            return Origin("file", str(resolved), f"plugin {resolved}")
        return interactive
    return Origin("module", module, f"plugin {module}")


def _top_level(obj: Any, module: str) -> bool:
    """Whether ``module``'s own namespace holds ``obj`` under its qualified name: then
    importing the module again registers it again."""
    qualname = getattr(obj, "__qualname__", "")
    found: Any = sys.modules.get(module)
    if found is None or not qualname or "<locals>" in qualname:
        return False
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


@contextmanager
def _importing(origin: Origin) -> Iterator[None]:
    _CURRENT.append(origin)
    try:
        yield
    finally:
        _CURRENT.pop()


def load_plugin(ref: str | Path) -> Origin:
    """Import a plugin named at run time: a module (``pkg.module``) or a ``.py`` file. Its
    decorators register its entries; a worker process imports it again by the same name.
    Loading the same plugin twice does nothing."""
    text = str(ref)
    if text.endswith(".py") or os.sep in text or Path(text).is_file():
        path = Path(text).expanduser().resolve()
        origin = Origin("file", str(path), f"plugin {path}")
    else:
        origin = Origin("module", text, f"plugin {text}")
        if os.getcwd() not in sys.path:  # as `python -m` does: a module beside you imports
            sys.path.append(os.getcwd())
    key = (origin.kind, origin.ref)
    if key in _PLUGINS:
        return _PLUGINS[key]
    try:
        with _importing(origin):
            if origin.kind == "file":
                _import_file(Path(str(origin.ref)))
            else:
                importlib.import_module(text)
    except PluginError:
        raise
    except FileNotFoundError:
        raise PluginError(f"{origin.label}: no such file") from None
    except ModuleNotFoundError as err:
        if err.name and text.startswith(err.name):
            raise PluginError(f"{origin.label}: no module named {err.name!r}") from None
        raise PluginError(f"{origin.label} failed to import: {err}") from None
    except BaseException as err:  # its own bug, or a sys.exit at import: one line, named
        if isinstance(err, KeyboardInterrupt):
            raise
        message = " ".join(str(err).split())
        raise PluginError(
            f"{origin.label} failed to import: {type(err).__name__}: {message}"
        ) from None
    _PLUGINS[key] = origin
    return origin


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(path)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"{_FILE_MODULE_PREFIX}{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    _FILE_PATHS[name] = path
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def portable_origins() -> list[Origin]:
    """What a new process must be told to see this one's registries: plugins loaded by
    name or path, and entries registered in-process (pickled when they cannot be found by
    name). Built-ins and entry points are left out: every process finds those itself."""
    found: dict[tuple[str, str | bytes], Origin] = dict(_PLUGINS)
    plugins = set(_PLUGINS.values())
    for what, registry in _REGISTRIES.items():
        for name, origin in list(registry._origins.items()):
            cls = registry._classes.get(name)
            moved = origin.portable and origin not in plugins and not _top_level(
                cls, getattr(cls, "__module__", "")
            )  # fmt: skip
            if origin.kind == "pickled" or moved:
                origin = _pickled(what, name, registry)
            if origin.portable:
                found.setdefault((origin.kind, origin.ref), origin)
    return list(found.values())


def _pickled(what: str, name: str, registry: Registry) -> Origin:
    obj = registry._classes[name]  # the class the decorator was given
    payload = cloudpickle.dumps((registry.owner, what, name, obj))
    return Origin("pickled", payload, f"{name} ({what} registered interactively)")


def restore(origins: Iterable[Origin]) -> None:
    """In a new process: import the plugins and re-register the entries of ``origins``."""
    for origin in origins:
        if origin.kind in ("module", "file"):
            load_plugin(str(origin.ref))
        elif origin.kind == "pickled":
            try:
                owner, what, name, obj = cloudpickle.loads(origin.ref)
            except Exception as err:  # a class that needs a module this process lacks
                raise PluginError(f"{origin.label} cannot be rebuilt in a worker process: "
                                  f"{type(err).__name__}: {err}") from None  # fmt: skip
            if what not in _REGISTRIES:
                importlib.import_module(owner)  # data, not a dependency: the owner named it
            registry = _REGISTRIES[what]
            if name not in registry._entries:
                registry.add(name, origin)(obj)
