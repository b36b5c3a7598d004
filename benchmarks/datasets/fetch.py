"""Finding a dataset's files, verifying their checksums, and downloading missing ones.

Lookup order for the folder of a dataset (e.g. ``kodak/``):

1. the ``data_dir`` argument (the CLI's ``--data-dir``): when given, it is the only place
   looked at (an explicit folder is a promise: a dataset missing there is an error, not a
   reason to read another copy from elsewhere);
2. the ``VLAE_BENCH_DATA`` environment variable,
3. the user cache (``platformdirs.user_cache_dir("vlae-bench")``, or ``VLAE_BENCH_CACHE``),
4. a download into the cache with pooch, checked against the pinned hash,
   unless ``VLAE_BENCH_OFFLINE=1``.

The first root holding *all* the requested files wins; its files are then verified, and a
mismatch is an error rather than a reason to look further.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.registry import DatasetSpec, FileSpec, Resource

ENV_DATA = "VLAE_BENCH_DATA"
ENV_CACHE = "VLAE_BENCH_CACHE"
ENV_OFFLINE = "VLAE_BENCH_OFFLINE"

# (resolved path, size, mtime_ns, algorithm) -> hex digest, so repeated loads do not rehash.
_digests: dict[tuple[str, int, int, str], str] = {}


def cache_root() -> Path:
    """The download cache: ``$VLAE_BENCH_CACHE`` if set, else the platform's user cache folder."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("vlae-bench"))


def downloads_allowed() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in {"1", "true", "yes"}


def data_root_candidates(data_dir: Path | None) -> list[tuple[str, Path]]:
    """The data roots searched, in order, each labelled by where it came from.

    An explicit ``data_dir`` that is not a folder is an error (most likely a typo), whereas a stale
    ``VLAE_BENCH_DATA`` is only listed, so the message for a missing dataset can show it.
    """
    roots: list[tuple[str, Path]] = []
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DatasetError(f"--data-dir {data_dir} is not a folder")
        roots.append(("--data-dir", data_dir))
    env = os.environ.get(ENV_DATA)
    if env:
        roots.append((ENV_DATA, Path(env).expanduser()))
    roots.append(("cache", cache_root()))
    return roots


def find_local(resource: Resource, folder: Path) -> tuple[Path, FileSpec] | None:
    """The preferred form of `resource` present in `folder`, or None."""
    for choice in resource.choices:
        path = folder / choice.name
        if path.is_file():
            return path, choice
    return None


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks and memoised by path, size and mtime."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, algorithm)
    if key not in _digests:
        digest = hashlib.new(algorithm)
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def verify_file(path: Path, spec: FileSpec) -> None:
    """Raise DatasetError unless `path` has the checksum pinned in `spec`."""
    algorithm, expected = spec.known_hash.split(":", 1)
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DatasetError(
            f"checksum mismatch for {path}: expected {algorithm} {expected[:12]}..., "
            f"got {actual[:12]}... (wrong or corrupt file; replace it or delete it to re-download)"
        )


def resolve_files(
    spec: DatasetSpec, keys: Sequence[str], data_dir: Path | None = None
) -> dict[str, Path]:
    """Verified local paths of the files `keys` of `spec`; downloads them if no root has all."""
    assert spec.folder is not None, f"{spec.name} has no files"
    roots = data_root_candidates(data_dir)
    if data_dir is not None:
        roots = roots[:1]
    found = _first_complete_root(spec, keys, roots)
    if found is None and data_dir is not None:
        raise _not_found(spec, keys, roots, "leave --data-dir out to look in "
                         f"${ENV_DATA} and the cache, and to download")  # fmt: skip
    if found is None:
        found = _download(spec, keys, roots)
    for path, file_spec in found.values():
        verify_file(path, file_spec)
    return {key: path for key, (path, _) in found.items()}


def _first_complete_root(
    spec: DatasetSpec, keys: Sequence[str], roots: list[tuple[str, Path]]
) -> dict[str, tuple[Path, FileSpec]] | None:
    for _, root in roots:
        folder = root / spec.folder
        found = {key: find_local(spec.resource(key), folder) for key in keys}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _download(
    spec: DatasetSpec, keys: Sequence[str], roots: list[tuple[str, Path]]
) -> dict[str, tuple[Path, FileSpec]]:
    """Fetch the missing files into the cache with pooch (which checks the pinned hash)."""
    if not downloads_allowed():
        raise _not_found(
            spec, keys, roots, f"unset {ENV_OFFLINE} to allow downloads from {spec.source_url}"
        )
    import pooch  # imported here: only downloads need it

    folder = cache_root() / spec.folder
    found: dict[str, tuple[Path, FileSpec]] = {}
    for key in keys:
        resource = spec.resource(key)
        local = find_local(resource, folder)
        if local is not None:
            found[key] = local
            continue
        file_spec = resource.download
        if file_spec is None:
            raise _not_found(spec, keys, roots, f"get it from {spec.source_url}")
        failures = []
        for url in file_spec.urls:
            try:
                pooch.retrieve(
                    url, known_hash=file_spec.known_hash, fname=file_spec.name, path=folder
                )
                break
            except (OSError, ValueError) as err:  # network errors are OSErrors; bad hash ValueError
                failures.append(f"{url}: {_one_line(err)}")
        else:
            raise _not_found(spec, keys, roots, "downloading failed: " + "; ".join(failures))
        found[key] = (folder / file_spec.name, file_spec)
    return found


def _not_found(
    spec: DatasetSpec, keys: Sequence[str], roots: list[tuple[str, Path]], remedy: str
) -> DatasetError:
    names = summarize([spec.resource(key).canonical_name for key in keys])
    tried = ", ".join(f"{label}={root}" for label, root in roots)
    note = f"; {spec.note}" if spec.note else ""
    return DatasetError(
        f"dataset {spec.name!r} not found: put {names} in <root>/{spec.folder}/ "
        f"(roots tried: {tried}){note}; or {remedy}"
    )


def summarize(names: Sequence[str]) -> str:
    """'a, b, c' for a few names, 'first..last (N files)' for many."""
    if len(names) <= 4:
        return ", ".join(names)
    return f"{names[0]}..{names[-1]} ({len(names)} files)"


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]
