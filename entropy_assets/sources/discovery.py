"""Which sources a list of paths means: files, folders (walked in name order, hidden names skipped), globs, saved
``datasets`` folders and dataset names, each once, with the short names that label their records' ids."""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SourceError

_FILE_KINDS: dict[str, str] = {
    ".json.gz": "json",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
    ".txt.gz": "txt",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "txt",
}
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_FILE_KINDS)
TEXT_SUFFIXES: tuple[str, ...] = tuple(suffix for suffix, kind in _FILE_KINDS.items() if kind == "txt")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_GLOB_CHARS = frozenset("*?[")


Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""One path, or several: files, folders, globs or dataset names."""


@dataclass(frozen=True)
class Source:
    """One thing to read: a file (``kind`` by its suffix), a saved dataset folder, or a dataset name."""

    label: str
    kind: str
    path: Path | None = None
    min_depth: int = 1
    gz: bool = False
    split: str = "train"
    hub_kwargs: Mapping[str, Any] = field(default_factory=dict)


def discover(paths: Paths) -> list[Source]:
    """The sources ``paths`` name, in order, each once (a file reached twice is read once)."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    return _dedupe(source for item in items for source in _expand(item))


def _expand(item: str | os.PathLike[str]) -> list[Source]:
    text = os.fspath(item)
    path = Path(text)
    if path.exists():
        return _expand_existing(path, explicit=True)
    if _GLOB_CHARS & set(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise SourceError(f"{text}: no files match this pattern")
        return [source for match in matches for source in _expand_existing(Path(match), explicit=False)]
    if _HUB_NAME.fullmatch(text) and suffix_of(text, SUPPORTED_SUFFIXES) is None:
        return [Source(label=text, kind="hub")]
    raise SourceError(f"{text}: no such file or directory")


def _expand_existing(path: Path, *, explicit: bool) -> list[Source]:
    if path.is_dir():
        return _walk(path)
    suffix = suffix_of(path.name, SUPPORTED_SUFFIXES)
    if suffix is None:
        if explicit:
            raise SourceError(f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
        return []
    if not path.is_file():  # opening a named pipe waits for a writer: it would hang the load
        raise SourceError(f"{path}: not a regular file (a named pipe, socket or device); data must be in files")
    return [Source(label=str(path), kind=_FILE_KINDS[suffix], path=path, gz=suffix.endswith(".gz"))]


def _walk(root: Path) -> list[Source]:
    """Supported files and saved datasets under ``root``, in sorted order, skipping hidden names."""
    if is_saved_dataset(root):
        return _saved_dataset_sources(root)
    sources: list[Source] = []
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise SourceError(f"{root}: cannot be listed ({exc.strerror or exc})") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            sources.extend(_walk(entry))
        else:
            sources.extend(_expand_existing(entry, explicit=False))
    return sources


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder of ``datasets``' ``save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
    )


def _saved_dataset_sources(root: Path) -> list[Source]:
    dict_file = root / "dataset_dict.json"
    if not dict_file.is_file():
        return [Source(label=str(root), kind="hf_disk", path=root)]
    try:
        splits = json.loads(dict_file.read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SourceError(f"{dict_file}: not a valid dataset_dict.json ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(splits, list) and all(isinstance(split, str) and split for split in splits)):
        raise SourceError(f"{dict_file}: not a valid dataset_dict.json ('splits' must be a list of split names)")
    return [Source(label=str(root / split), kind="hf_disk", path=root / split, min_depth=2) for split in splits]


def _dedupe(sources: Iterable[Source]) -> list[Source]:
    seen: set[str] = set()
    unique: list[Source] = []
    for source in sources:
        key = str(source.path.resolve()) if source.path is not None else f"hub:{source.label}"
        if key not in seen:
            seen.add(key)
            unique.append(source)
    return unique


def source_names(sources: Sequence[Source]) -> list[str]:
    """Shortest trailing path of each source that no other source in this load shares."""
    parts = [source.path.resolve().parts if source.path is not None else () for source in sources]
    depths = [source.min_depth for source in sources]

    def names() -> list[str]:
        return [
            "/".join(p[-d:]) if p else f"{source.label}/{source.split}"
            for source, p, d in zip(sources, parts, depths, strict=True)
        ]

    current = names()
    while True:
        counts = Counter(current)
        grow = [i for i, name in enumerate(current) if counts[name] > 1 and depths[i] < len(parts[i])]
        if not grow:
            return current
        for i in grow:
            depths[i] += 1
        current = names()


def suffix_of(name: str, suffixes: Sequence[str]) -> str | None:
    """The first of ``suffixes`` that ``name`` ends with, case-insensitively."""
    lowered = name.lower()
    return next((suffix for suffix in suffixes if lowered.endswith(suffix)), None)


def source_files(paths: Paths) -> list[Path]:
    """The files ``load_pool`` would read for ``paths`` (saved datasets as their folders), sorted."""
    return sorted({source.path for source in discover(paths) if source.path is not None})


def data_files(paths: Paths) -> list[Path]:
    """Every file behind ``source_files``: saved datasets' folders walked in name order."""
    files: list[Path] = []
    for path in source_files(paths):
        try:
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
        except OSError as exc:
            raise SourceError(f"{path}: cannot be listed ({exc.strerror or exc}); did it change while read?") from exc
    return files
