"""Where a pipeline's files live: parquet, exported records and plots under one base path, written atomically.

Local paths by default; any fsspec location through ``universal_pathlib`` (``s3://bucket/prefix``, ...). Outputs
are versioned and never overwritten: a versioned file names its content, so it is written once. A remote store's
address and credentials come from its own environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...),
never from the base path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from upath import UPath

from entropy_assets.credentials import refuse_inline_credentials
from entropy_assets.sources import STALE_TEMPORARY_SECONDS, write_atomically, write_records

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
"""Protocols of object stores, where an uploaded object becomes visible only once it is whole (a single PUT, or a
multipart upload when it completes): a file is uploaded under its own name, with no temporary object to move."""
COMPLETE_SUFFIX = ".complete"
"""``<folder>.complete``, beside a folder that ``link_folder`` copied on a remote store, is written last: the folder
is whole. Beside it, not in it, so that the folder reads as a table (polars, pyarrow); named after it, so that
pruning the folder's version removes it too."""
PARQUET_ROW_GROUP = 8_192
"""Rows per row group of the parquet files ``Storage`` writes. Polars encodes a frame written whole as one row group
held in memory besides the frame: the 100,000 longest samples of a pool of ten million (737 MB of rows) took 1.25 GB
more to write; 8,192 rows at a time, nothing measurable."""


@dataclass(frozen=True)
class Storage:
    """The base path of a pipeline's outputs. A failed write never replaces a good file, and nothing is read or
    written outside the base path."""

    base_path: str = "entropy_assets_storage"

    def __post_init__(self) -> None:
        # A base path with a password or a token would be shown in every output's metadata: the message names the
        # kind of credential, never its value.
        refuse_inline_credentials({"base_path": self.base_path}, "EntropyStorage")

    def path(self, *parts: str) -> UPath:
        """``base_path / parts``, which must stay inside the base path: parts (which may hold ``/``, as a recorded
        ``file`` does) may not be absolute or climb with ``..``, and locally no symbolic link on the way may lead
        out of the base path (a write through it would land elsewhere)."""
        for part in parts:
            if "\0" in part or part.startswith(("/", "\\")) or ".." in Path(part).parts:
                raise ValueError(f"storage path part {part!r} must stay inside {self.base_path}")
        target = self._root().joinpath(*parts)
        if parts and _is_local(target):
            root = os.path.realpath(UPath(self.base_path).path)
            real = os.path.realpath(target.path)
            if os.path.commonpath([root, real]) != root:
                raise ValueError(
                    f"storage path {'/'.join(parts)} leads to {real}, outside the storage root {root}: a symbolic "
                    "link inside the storage points out of it; remove the link, or set base_path to where the "
                    "outputs should go"
                )
        return target

    def write_parquet(self, frame: pl.DataFrame, *parts: str) -> UPath:
        """Store ``frame`` as parquet at ``parts``, atomically, ``PARQUET_ROW_GROUP`` rows to a row group."""

        def write(tmp: Path) -> None:
            frame.write_parquet(tmp, row_group_size=PARQUET_ROW_GROUP)

        return self._write(lambda local: write_atomically(local, write), *parts)

    def write_records(self, frame: pl.DataFrame, *parts: str) -> UPath:
        """Write the frame's original records (format by the file name's suffix), atomically."""
        return self._write(lambda local: write_records(frame, local), *parts)

    def write_bytes(self, data: bytes, *parts: str) -> UPath:
        """Store ``data`` at ``parts``, atomically."""
        return self._write(lambda local: write_atomically(local, lambda tmp: tmp.write_bytes(data)), *parts)

    def write_version(self, frame: pl.DataFrame, *parts: str) -> UPath:
        """Store ``frame`` as parquet at ``parts`` once: a versioned file names its content, so an existing one
        is kept as it is, never rewritten."""
        target = self.path(*parts)
        return target if target.exists() else self.write_parquet(frame, *parts)

    def write_once(self, write: Callable[[Path], object], *parts: str) -> UPath:
        """Store a versioned file that ``write(local_path)`` makes, atomically, unless it exists already."""
        target = self.path(*parts)
        return target if target.exists() else self._write(lambda local: write_atomically(local, write), *parts)

    def local_path(self, *parts: str) -> Path | None:
        """``path(*parts)`` as a local file path, or None when the storage is a remote store."""
        target = self.path(*parts)
        return Path(target.path) if _is_local(target) else None

    def relative(self, path: UPath) -> str:
        """``path`` relative to the base path, as recorded in metadata (``file``): outputs stay readable when the
        storage is moved or copied."""
        return path.relative_to(self._root()).as_posix()

    def read_parquet(self, *parts: str, columns: list[str] | None = None) -> pl.DataFrame:
        """Read parquet stored at ``parts`` (only ``columns``, when given): a file, or a folder of files (a pool)
        read in name order."""
        target = self.path(*parts)
        if target.is_dir():
            files = sorted((p for p in target.iterdir() if p.name.endswith(".parquet")), key=lambda p: p.name)
            return pl.concat([_read_parquet(file, columns) for file in files], how="vertical")
        return _read_parquet(target, columns)

    def link_folder(self, files: Sequence[tuple[str, ...]], *parts: str) -> UPath:
        """A folder at ``parts`` holding the stored ``files`` (each given by its parts), in order: each under its own
        name behind its position (``00000.<name>``, ``00001.<name>``, ...), as hard links where the storage is local
        (no byte is copied), copies on a remote store. Written once: an existing folder is kept. Locally the folder
        appears whole or not at all; on a remote store it fills file by file and is whole once its
        ``COMPLETE_SUFFIX`` marker is written (see ``_copy_folder``)."""
        target = self.path(*parts)
        sources = [self.path(*file) for file in files]
        names = [f"{index:05d}.{source.name}" for index, source in enumerate(sources)]
        if not _is_local(target):
            _copy_folder(sources, names, target)
            return target
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            for source, name in zip(sources, names, strict=True):
                try:
                    os.link(source.path, staging / name)
                except OSError:  # a file system without hard links
                    shutil.copyfile(source.path, staging / name)
            os.chmod(staging, 0o755)
            os.rename(staging, target.path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.exists():  # else another writer put the same folder in place first
                raise
        _remove_stale_folders(Path(target.path))
        return target

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    def _root(self) -> UPath:
        """The base path as a ``UPath``. A remote store's listings are not cached: another process (a worker, another
        run) writes beside this one, and a cached listing would hide its files (``exists`` false, a read not found)."""
        root = UPath(self.base_path)
        return root if _is_local(root) else UPath(self.base_path, use_listings_cache=False)

    def _write(self, write_local: Callable[[Path], object], *parts: str) -> UPath:
        """Run ``write_local`` (itself atomic) on the local target, or on a local file then uploaded."""
        target = self.path(*parts)
        if _is_local(target):
            write_local(Path(target.path))
            return target
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / target.name
            write_local(local)  # whole, or it raised and nothing is uploaded
            if target.protocol in OBJECT_STORES:
                target.fs.put_file(str(local), target.path)
                return target
            # Other remote file systems may show a file while it is written: upload it under a temporary name, and
            # move it into place.
            staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                target.fs.put_file(str(local), staging.path)
                target.fs.mv(staging.path, target.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    target.fs.rm(staging.path)
                raise
        return target


def _copy_folder(sources: Sequence[UPath], names: Sequence[str], target: UPath) -> None:
    """``link_folder`` on a remote store, which has no folder to rename into place: each file is copied (inside the
    store: each object appears whole) unless a copy cut short already made it, then the folder's marker is written.
    A folder with its marker is kept as it is; one without is completed, and what it holds that it should not (a
    cut-short copy made under other load settings) is removed first. A pool is recorded, and so read, only once its
    folder is whole."""
    fs = target.fs
    marker = target.with_name(target.name + COMPLETE_SUFFIX)
    try:
        present = {entry.name for entry in target.iterdir()}
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet
        present = set()
    if present and marker.exists():
        return
    for stray in sorted(present - set(names)):
        fs.rm((target / stray).path)
    for source, name in zip(sources, names, strict=True):
        if name not in present:
            fs.copy(source.path, (target / name).path)
    fs.pipe_file(marker.path, "\n".join(names).encode() + b"\n")


def _remove_stale_folders(path: Path) -> None:
    """Staging folders of ``link_folder`` left by a killed writer (see ``STALE_TEMPORARY_SECONDS``)."""
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # another writer removed it first
            if stale.is_dir() and stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale)


def _read_parquet(path: UPath, columns: list[str] | None) -> pl.DataFrame:
    with path.open("rb") as handle:
        return pl.read_parquet(handle, columns=columns)


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")
