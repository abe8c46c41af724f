"""Loading a pool from data files, datasets or records in memory, and storing it as parquet."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from entropy_assets.records import ColumnMapping, RecordFormat

from .atomic import write_atomically
from .builder import MAX_RECORD_BYTES, POOL_SCHEMA, LoadedPool, PoolBuilder
from .columns import SourceColumns
from .discovery import Paths, Source, discover, is_saved_dataset, source_names
from .errors import SourceError
from .readers import read_source


def load_pool(
    paths: Paths,
    *,
    fmt: RecordFormat | None = None,
    skip_malformed: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
    columns: ColumnMapping | SourceColumns | None = None,
) -> LoadedPool:
    """Load files, folders (recursively, sorted), globs or dataset names into one pool.

    Each record's format is detected unless ``fmt`` is given (``.txt`` lines are always text); ``columns`` maps
    the records' own fields onto the canonical roles, for every source or per path (``SourceColumns``). Records with
    empty canonical text are dropped and counted; malformed ones, and ones over ``max_record_bytes``, raise
    ``SourceError`` unless ``skip_malformed``. A file that cannot be read through (a ``.json`` that does not
    parse, a corrupt gzip or parquet, one that vanishes or changes while read) raises even then, since its
    records cannot be located or counted. Ids are ``"{name}:{index}"`` with ``name`` the file name, lengthened by
    parent folders only where two loaded files share a name.
    """
    sources = discover(paths)
    by_source = columns if isinstance(columns, SourceColumns) else SourceColumns(columns)
    builder = PoolBuilder(fmt, skip_malformed, max_record_bytes)
    for source, name in zip(sources, source_names(sources), strict=True):
        builder.report.files.append(source.label)
        builder.columns = by_source.for_source(source.label)
        read_source(source, name, builder)
    return builder.finish()


def load_hf_dataset(
    name_or_path: str,
    split: str = "train",
    *,
    fmt: RecordFormat | None = None,
    skip_malformed: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
    columns: ColumnMapping | None = None,
    **kwargs: Any,
) -> LoadedPool:
    """Load one split of a ``save_to_disk`` folder or of anything ``datasets.load_dataset`` resolves.

    ``kwargs`` go to ``load_dataset`` (e.g. ``data_files``); Hub names need network access.
    """
    path = Path(name_or_path)
    if path.is_dir() and is_saved_dataset(path):
        name = path.resolve().name
        if (path / "dataset_dict.json").is_file():
            path = path / split
            name = f"{name}/{split}"
        source = Source(label=str(path), kind="hf_disk", path=path)
    else:
        source = Source(label=name_or_path, kind="hub", split=split, hub_kwargs=kwargs)
        name = f"{name_or_path}/{split}"
    builder = PoolBuilder(fmt, skip_malformed, max_record_bytes, columns)
    builder.report.files.append(source.label)
    read_source(source, name, builder)
    return builder.finish()


def pool_from_records(
    records: Iterable[Any],
    source: str,
    *,
    fmt: RecordFormat | None = None,
    skip_malformed: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
    columns: ColumnMapping | None = None,
) -> LoadedPool:
    """Build a pool from records already in memory; ``source`` names them in ids and error messages."""
    builder = PoolBuilder(fmt, skip_malformed, max_record_bytes, columns)
    builder.report.files.append(source)
    for index, record in enumerate(records):
        builder.add(record, name=source, label=source, index=index)
    return builder.finish()


def write_pool(frame: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Store the pool columns of ``frame`` as parquet, atomically."""
    path = Path(path)
    missing = [name for name in POOL_SCHEMA if name not in frame.columns]
    if missing:
        raise SourceError(f"{path}: the frame lacks pool columns {missing}")
    pool = frame.select(list(POOL_SCHEMA)).cast(dict(POOL_SCHEMA))
    return write_atomically(path, pool.write_parquet)


def read_pool(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a pool stored by ``write_pool`` (a file) or by the ``pool`` asset (a folder of parquet files, read in
    name order), with exactly ``POOL_SCHEMA``."""
    path = Path(path)
    if not (path.is_file() or path.is_dir()):
        raise SourceError(f"{path}: no such pool file or folder")
    try:
        frame = pl.read_parquet(path)
    except (Exception, pl.exceptions.PanicException) as exc:  # polars panics on some damaged files
        raise SourceError(f"{path}: not a readable parquet file ({exc})") from exc
    missing = [name for name in POOL_SCHEMA if name not in frame.columns]
    if missing:
        raise SourceError(f"{path}: not a pool file; columns {missing} are missing")
    return frame.select(list(POOL_SCHEMA)).cast(dict(POOL_SCHEMA))
