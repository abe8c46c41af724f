"""Raw data to pool: the observation of the source files, and the pool built from them one source at a time.

A pool version is a folder of parquet files, one per source in load order (``<version>/00000.<part>``, ...). Each
is a hard link to the source's stored *part* (``parts/<part>``), named by the source's content, its load settings
and its name in the pool: an unchanged source is neither parsed nor copied again, whatever else changed. Polars, pyarrow
and DuckDB read such a folder as one table.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from upath import UPath

from entropy_assets.compression import default_threads
from entropy_assets.records import RecordFormat
from entropy_assets.scoring import SCORED_COLUMNS, ShardOrderedWriter
from entropy_assets.sources import LoadReport, SourceColumns, SourceError
from entropy_assets.sources.discovery import Source, discover, source_names
from entropy_assets.sources.parts import (
    EMPTY_POOL,
    LoadSettings,
    part_key,
    part_report,
    read_part,
    read_part_rows,
    write_part,
)
from entropy_assets.storage import Storage
from entropy_assets.versions import ShardFingerprints, data_version, file_hashes, pool_version, short_hash

from .pool_result import PoolResult, RawDataResult
from .workspace import Workspace


def observe_raw_data(paths: Sequence[str]) -> RawDataResult:
    """The raw data's version, from the hash of every file: any changed byte is a new version."""
    hashes = file_hashes(paths)
    return RawDataResult(tuple(paths), data_version(paths, hashes), hashes)


@dataclass(frozen=True)
class _Part:
    """One source of the pool and its stored part: ``content`` names what it holds, ``file`` where it is, and
    ``settings`` how it is read."""

    source: Source
    name: str
    content: str | None
    file: tuple[str, ...]
    settings: LoadSettings


def build_pool(
    workspace: Workspace,
    paths: Sequence[str],
    *,
    skip_malformed: bool = False,
    shards: int = 1,
    fmt: RecordFormat | None = None,
    columns: SourceColumns | None = None,
) -> PoolResult:
    """Every record at ``paths`` as canonical text, stored under the pool version (once: a version already stored is
    kept): the raw data version it was read from, and the forced format ``fmt`` and column mappings ``columns``
    when set. With ``shards`` above 1, also a copy ordered by content-hash shard, and each shard's fingerprint.

    Built one source at a time: a source whose content, load settings (its column mapping among them) and name are
    unchanged since an earlier build is neither parsed nor copied, its stored part is linked into the new version; a
    moved or renamed one is relabelled from its part; a new or changed one is parsed; a removed one is simply not in
    the new version. Memory holds one source's rows at a time. Raises ``SourceError`` if the data changed while it
    was read: no pool is then written, nor the part of a file that changed."""
    hashes = file_hashes(paths)
    raw_version = data_version(paths, hashes)
    columns = columns or SourceColumns()
    reading = {**({"format": fmt} if fmt else {}), **(columns.describe() or {})}
    version = pool_version(raw_version, reading)
    try:
        sources = discover(paths)
        parts = []
        for source, name in zip(sources, source_names(sources), strict=True):
            settings = LoadSettings(fmt=fmt, skip_malformed=skip_malformed, columns=columns.for_source(source.label))
            parts.append(_part(workspace, source, name, part_key(source, hashes, settings), settings))
        parsed = _store_missing(workspace, parts)
        _check_unchanged(paths, raw_version)  # else the pool would be stored under a version it is not
        return _assemble(workspace, parts, parsed, version, shards, raw_version)
    except SourceError as error:  # a half-written record, say: if the data moved meanwhile, that is the cause
        _check_unchanged(paths, raw_version, cause=error)
        raise


def _part(workspace: Workspace, source: Source, name: str, content: str | None, settings: LoadSettings) -> _Part:
    labels = short_hash(f"{name}\0{source.label}", 12)
    key = f"{content}.{labels}" if content is not None else f"unhashed-{labels}-{os.getpid()}-{time.time_ns()}"
    return _Part(source, name, content, (*workspace.folder("pool", "parts"), f"{key}.parquet"), settings)


PARALLEL_BYTES = 256 << 20
"""Sources to parse of at least this many bytes together are parsed by one process per core: parsing is the pool
step's work (ten million samples, 10 GB of JSONL: about ten minutes on one core), and each part is its own."""


def _store_missing(workspace: Workspace, parts: Sequence[_Part]) -> list[_Part]:
    """Store the parts not stored yet (parsed, or relabelled from a sibling); the parts that were parsed, in order.
    Large enough work goes to one process per core (none in a daemonic process, a dask worker say, which may not
    start processes); each part is written whole or not at all, so a build killed meanwhile keeps what it stored."""
    storage = workspace.storage
    missing = [part for part in parts if not storage.exists(*part.file)]
    processes = 1 if multiprocessing.current_process().daemon else min(default_threads(), len(missing))
    if processes > 1 and _local_bytes(missing) >= PARALLEL_BYTES:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=context) as workers:
            parsed = list(workers.map(_store, [storage] * len(missing), missing))
    else:
        parsed = [_store(storage, part) for part in missing]
    for part, was_parsed in zip(missing, parsed, strict=True):
        if was_parsed:
            workspace.log.info(f"pool: parsed {part.source.label}")
    return [part for part, was_parsed in zip(missing, parsed, strict=True) if was_parsed]


def _local_bytes(parts: Sequence[_Part]) -> int:
    """The bytes of the parts' sources that are local files (a dataset name's or a remote file's count none)."""
    sizes = (os.path.getsize(part.source.label) for part in parts if os.path.isfile(part.source.label))
    return sum(sizes)


def _store(storage: Storage, part: _Part) -> bool:
    """Store a source's part: relabelled from a part of the same content under another name, or parsed. Whether
    the source was parsed."""
    sibling = _same_content(storage, part)
    if sibling is not None:
        with sibling.open("rb") as handle:
            report, rows = part_report(handle, str(sibling)), read_part_rows(handle, str(sibling))
        storage.write_once(lambda local: write_part(rows, report, part.name, part.source.label, local), *part.file)
        return False
    loaded = read_part(part.source, part.settings)
    if (
        part.content is not None
        and part_key(part.source, file_hashes(part.source.label), part.settings) != part.content
    ):
        raise SourceError(f"{part.source.label} changed while it was being read")
    storage.write_once(
        lambda local: write_part(loaded.frame, loaded.report, part.name, part.source.label, local), *part.file
    )
    return True


def _same_content(storage: Storage, part: _Part) -> UPath | None:
    """A stored part of the same content under another name (a moved or renamed file), if any."""
    if part.content is None:
        return None
    folder = storage.path(*part.file[:-1])
    if not folder.exists():
        return None
    return next(iter(sorted(folder.glob(f"{part.content}.*.parquet"), key=str)), None)


def _assemble(
    workspace: Workspace, parts: Sequence[_Part], parsed: Sequence[_Part], version: str, shards: int, raw_version: str
) -> PoolResult:
    """Link the parts into the version's folder and, with shards, stream them into the shard-ordered copy and the
    shards' fingerprints."""
    storage = workspace.storage
    folder = workspace.folder("pool")
    files = [part.file for part in parts]
    if not files:  # no source at all: one empty part, so that the folder reads as an empty table
        files = [(*folder, "parts", "empty.parquet")]
        storage.write_once(lambda local: write_part(EMPTY_POOL, LoadReport(), "", "", local), *files[0])
    pool = storage.link_folder(files, *folder, version)
    reports = []
    for part in parts:
        with storage.path(*part.file).open("rb") as handle:
            reports.append(part_report(handle, "/".join(part.file)))
    shard_file, fingerprints = None, None
    if shards > 1:
        shard_file, fingerprints = _shards(workspace, files, version, shards)
    for part in parts:  # a dataset name's part is made for this build only
        if part.content is None:
            storage.path(*part.file).unlink()
    report = LoadReport()
    for part, part_report_ in zip(parts, reports, strict=True):
        report.merge(part_report_, part.source.label)
    fresh = [part_report_ for part, part_report_ in zip(parts, reports, strict=True) if part in parsed]
    return PoolResult(
        path=str(pool),
        file=storage.relative(pool),
        version=version,
        records_read=report.records_read,
        records_kept=report.records_kept,
        dropped=dict(report.dropped),
        invalid_utf8=report.invalid_utf8,
        bytes=report.bytes,
        formats=dict(report.formats),
        files=len(parts),
        files_parsed=len(fresh),
        records_parsed=sum(part_report_.records_read for part_report_ in fresh),
        shard_file=shard_file,
        shard_fingerprints=fingerprints,
        raw_data_version=raw_version,
    )


def _shards(
    workspace: Workspace, files: Sequence[tuple[str, ...]], version: str, shards: int
) -> tuple[str, dict[str, str]]:
    """The shard-ordered copy, a folder of one file per shard (written once: each file whole, then ``<folder>.done``
    last), and every shard's fingerprint, from the parts one at a time."""
    storage = workspace.storage
    pool = workspace.folder("pool")
    target, done = (*pool, f"{version}.shards{shards}"), (*pool, f"{version}.shards{shards}.done")
    fingerprints = ShardFingerprints(shards)
    with tempfile.TemporaryDirectory(prefix="pool-shards-") as scratch:
        ordered = None if storage.exists(*done) else ShardOrderedWriter(shards, Path(scratch))
        for file in files:
            columns = list(SCORED_COLUMNS) if ordered is not None else ["id", "content_hash"]
            rows = storage.read_parquet(*file, columns=columns)
            fingerprints.update(rows)
            if ordered is not None:
                ordered.add(rows)
        if ordered is not None:
            ordered.finish_shards(
                lambda key, made: storage.write_once(
                    lambda local: shutil.copyfile(made, local), *target, f"{key}.parquet"
                )
            )
            storage.write_once(lambda local: Path(local).write_text(f"{shards} shards\n"), *done)
    return storage.relative(storage.path(*target)), fingerprints.result()


def _check_unchanged(paths: Sequence[str], version: str, *, cause: SourceError | None = None) -> None:
    """Raise if the raw data at ``paths`` is no longer at ``version``: it changed while it was being read."""
    if data_version(paths) != version:
        raise SourceError(
            f"the raw data at {', '.join(paths)} changed while it was being read; nothing was written: materialize "
            "again once it has settled"
        ) from cause
