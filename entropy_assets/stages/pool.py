"""Raw data to pool: the observation of the source files, and the pool built from them one source at a time.

A pool version is a folder of parquet files, one per source in load order (``<version>/00000.<part>``, ...). Each
is a hard link to the source's stored *part* (``parts/<part>``), named by the source's content, its load settings
and its name in the pool: an unchanged source is neither parsed nor copied again, whatever else changed. Polars, pyarrow
and DuckDB read such a folder as one table.

With shards, the process that stores a part also splits its rows by content-hash shard into *shard pieces*
(``shard_pieces/<shards>/<key>/<part>``, one per shard key, then ``shard_pieces/<shards>/<part>.done``). The
version's shard-ordered copy, ``<version>.shards<shards>/<key>/``, is a folder per shard of that shard's piece of every
part in load order, linked as the version's folder is: no process copies the pool's text a second time.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import polars as pl
from upath import UPath

from entropy_assets.compression import default_threads
from entropy_assets.records import RecordFormat
from entropy_assets.scoring import SCORED_COLUMNS, shard_keys, shard_pieces, write_shard_piece
from entropy_assets.sources import LoadReport, SourceColumns, SourceError
from entropy_assets.sources.discovery import Source, discover, source_names
from entropy_assets.sources.parts import (
    EMPTY_POOL,
    LoadSettings,
    part_key,
    part_report,
    read_part,
    read_part_rows,
    relabel,
    write_part,
)
from entropy_assets.storage import Storage
from entropy_assets.versions import ShardFingerprints, data_version, file_hashes, pool_version, short_hash

from .pool_features import FEATURES, part_feature_file
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
        copied = workspace.storage.exists(*_shard_copy(workspace, version, shards)[1])
        parsed = _store_missing(workspace, parts, shards if shards > 1 and not copied else None)
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


SHARD_PIECES = "shard_pieces"
"""The folder of the pool's shard pieces, beside ``parts``."""


@dataclass(frozen=True)
class _Pieces:
    """Where a stored part's rows of each shard go, by shard key, and the marker written once they all are."""

    files: tuple[tuple[str, ...], ...]
    done: tuple[str, ...]

    @classmethod
    def of(cls, part: tuple[str, ...], shards: int) -> _Pieces:
        """The pieces of ``part`` (``<pool>/parts/<name>``): ``<pool>/shard_pieces/<shards>/<key>/<name>``, and
        ``<pool>/shard_pieces/<shards>/<name>.done``."""
        folder, name = (*part[:-2], SHARD_PIECES, str(shards)), part[-1]
        return cls(tuple((*folder, key, name) for key in shard_keys(shards)), (*folder, f"{name}.done"))


def _store_missing(workspace: Workspace, parts: Sequence[_Part], shards: int | None) -> list[_Part]:
    """Store the parts not stored yet (parsed, or relabelled from a sibling) and, with ``shards``, the shard pieces
    of every part that lacks them; the parts that were parsed, in order. Large enough work goes to one process per
    core (none in a daemonic process, a dask worker say, which may not start processes); each part and each piece is
    written whole or not at all, so a build killed meanwhile keeps what it stored."""
    storage = workspace.storage

    def missing(part: _Part) -> bool:
        return not storage.exists(*part.file) or (
            shards is not None and not storage.exists(*_Pieces.of(part.file, shards).done)
        )

    todo = [part for part in parts if missing(part)]
    processes = 1 if multiprocessing.current_process().daemon else min(default_threads(), len(todo))
    if processes > 1 and _local_bytes(todo) >= PARALLEL_BYTES:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=context) as workers:
            parsed = list(workers.map(_store, [storage] * len(todo), todo, [shards] * len(todo)))
    else:
        parsed = [_store(storage, part, shards) for part in todo]
    for part, was_parsed in zip(todo, parsed, strict=True):
        if was_parsed:
            workspace.log.info(f"pool: parsed {part.source.label}")
    return [part for part, was_parsed in zip(todo, parsed, strict=True) if was_parsed]


def _local_bytes(parts: Sequence[_Part]) -> int:
    """The bytes of the parts' sources that are local files (a dataset name's or a remote file's count none)."""
    sizes = (os.path.getsize(part.source.label) for part in parts if os.path.isfile(part.source.label))
    return sum(sizes)


def _store(storage: Storage, part: _Part, shards: int | None) -> bool:
    """Store a source's part unless it is stored and, with ``shards``, its shard pieces unless they are: the pieces
    of a part just stored come from the rows in memory, not read back. Whether the source was parsed."""
    rows, parsed = None, False
    if not storage.exists(*part.file):
        rows, parsed = _store_part(storage, part)
    if shards is not None:
        _store_pieces(storage, part.file, shards, rows)
    return parsed


def _store_part(storage: Storage, part: _Part) -> tuple[pl.DataFrame, bool]:
    """Store a source's part: relabelled from a part of the same content under another name, or parsed. Its rows as
    the part holds them, and whether the source was parsed."""
    sibling = _same_content(storage, part)
    if sibling is not None:
        with sibling.open("rb") as handle:
            report, rows = part_report(handle, str(sibling)), read_part_rows(handle, str(sibling))
    else:
        loaded = read_part(part.source, part.settings)
        if (
            part.content is not None
            and part_key(part.source, file_hashes(part.source.label), part.settings) != part.content
        ):
            raise SourceError(f"{part.source.label} changed while it was being read")
        report, rows = loaded.report, loaded.frame
    script = FEATURES["script"].compute(rows["text"])  # a facet of the part's counts, and a feature to select by
    with_script = rows.hstack(script)
    storage.write_once(lambda local: write_part(with_script, report, part.name, part.source.label, local), *part.file)
    storage.write_once(lambda local: script.write_parquet(local), *part_feature_file(part.file, "script"))
    return relabel(rows, part.name, part.source.label), sibling is None


def _store_pieces(storage: Storage, part: tuple[str, ...], shards: int, rows: pl.DataFrame | None = None) -> None:
    """Store the stored ``part``'s rows (``rows``, else read from it) split by shard, one piece per shard key, each
    written once, then the pieces' marker: a build killed meanwhile leaves whole pieces, the next writes the rest."""
    pieces = _Pieces.of(part, shards)
    if storage.exists(*pieces.done):
        return
    if rows is None:
        rows = storage.read_parquet(*part, columns=list(SCORED_COLUMNS))
    for (_, table), piece in zip(shard_pieces(rows, shards), pieces.files, strict=True):
        storage.write_once(partial(write_shard_piece, table), *piece)
    storage.write_once(lambda local: Path(local).write_text(f"{shards} shards\n"), *pieces.done)


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
    """Link the parts into the version's folder and, with shards, their shard pieces into the shard-ordered copy;
    the shards' fingerprints."""
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
            for file in [part.file, *_made_pieces(part.file, shards)]:
                if storage.exists(*file):
                    storage.path(*file).unlink()
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


def _made_pieces(part: tuple[str, ...], shards: int) -> list[tuple[str, ...]]:
    """The files of ``part``'s shard pieces and their marker (none without shards)."""
    if shards < 2:
        return []
    pieces = _Pieces.of(part, shards)
    return [*pieces.files, pieces.done]


def _shard_copy(workspace: Workspace, version: str, shards: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The version's shard-ordered copy and its marker, written once the copy is whole."""
    pool = workspace.folder("pool")
    return (*pool, f"{version}.shards{shards}"), (*pool, f"{version}.shards{shards}.done")


def _shards(
    workspace: Workspace, files: Sequence[tuple[str, ...]], version: str, shards: int
) -> tuple[str, dict[str, str]]:
    """The shard-ordered copy, a folder per shard holding the shard's piece of every part in load order (linked as
    the version's folder is: written once, then ``<copy>.done`` last), and every shard's fingerprint, from the
    parts' ids and content hashes one part at a time: no text is read here."""
    storage = workspace.storage
    target, done = _shard_copy(workspace, version, shards)
    if not storage.exists(*done):
        for file in files:  # stored with their parts (here: an empty pool's part)
            _store_pieces(storage, file, shards)
        pieces = [_Pieces.of(file, shards) for file in files]
        for index, key in enumerate(shard_keys(shards)):
            storage.link_folder([piece.files[index] for piece in pieces], *target, key)
        storage.write_once(lambda local: Path(local).write_text(f"{shards} shards\n"), *done)
    fingerprints = ShardFingerprints(shards)
    for file in files:
        fingerprints.update(storage.read_parquet(*file, columns=["id", "content_hash"]))
    return storage.relative(storage.path(*target)), fingerprints.result()


def _check_unchanged(paths: Sequence[str], version: str, *, cause: SourceError | None = None) -> None:
    """Raise if the raw data at ``paths`` is no longer at ``version``: it changed while it was being read."""
    if data_version(paths) != version:
        raise SourceError(
            f"the raw data at {', '.join(paths)} changed while it was being read; nothing was written: materialize "
            "again once it has settled"
        ) from cause
