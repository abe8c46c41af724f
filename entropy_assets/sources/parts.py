"""A pool built one source at a time: each source's rows are a *part*, a parquet file with the source's load report
in its metadata, named (by ``part_key``) after the source's content and the load settings, so that an unchanged
file is parsed once however often the pool around it changes. A part's ids and ``source`` labels depend on where the
file is and on the files loaded beside it, not on its content: ``relabel`` gives a moved file's rows their new names
without parsing it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from entropy_assets.composition import facet_frame, value_counts
from entropy_assets.records import ColumnMapping, RecordFormat

from .builder import MAX_RECORD_BYTES, POOL_SCHEMA, LoadedPool, LoadReport, PoolBuilder
from .discovery import Source
from .errors import SourceError
from .readers import read_source

PART_CODE_VERSION = "pool-part-2"
"""Changes when parsing a source could give other rows: part of every part's key, so old parts are not reused."""
_REPORT_KEY = b"entropy_assets.load_report"
_FACETS_KEY = b"entropy_assets.facet_counts"
POOL_ROW_GROUP = 65_536
"""Rows per row group of a part: streaming readers of the pool decode one row group at a time."""
EMPTY_POOL = pl.DataFrame(schema=POOL_SCHEMA)
ARROW_POOL_SCHEMA: pa.Schema = EMPTY_POOL.to_arrow().schema


@dataclass(frozen=True)
class LoadSettings:
    """What, beside a source's bytes, decides the rows it becomes."""

    fmt: RecordFormat | None = None
    skip_malformed: bool = False
    max_record_bytes: int = MAX_RECORD_BYTES
    columns: ColumnMapping | None = None
    """The column mapping that reads the source (``SourceColumns.for_source``)."""


def part_key(source: Source, file_hashes: Mapping[str, str], settings: LoadSettings) -> str | None:
    """The name of ``source``'s part: a hash of its files' content (``file_hashes``, by path, as
    ``versions.file_hashes`` gives them), its kind and the load settings. None for a dataset name, whose content is
    not ours to hash: it is read every time."""
    if source.path is None:
        return None
    root = str(source.path)
    own = sorted(
        (os.path.relpath(path, root) if path != root else "", value)
        for path, value in file_hashes.items()
        if path == root or path.startswith(root + os.sep)
    )
    if not own:
        raise SourceError(f"{root}: no content hash was taken of this source; was it added while the pool was read?")
    identity = {
        "code": PART_CODE_VERSION,
        "kind": source.kind,
        "gz": source.gz,
        "split": source.split if source.kind == "hf_disk" else None,
        "files": own,
        "fmt": settings.fmt,
        "skip_malformed": settings.skip_malformed,
        "max_record_bytes": settings.max_record_bytes,
        "columns": settings.columns.model_dump(exclude_none=True) if settings.columns is not None else None,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def read_part(source: Source, settings: LoadSettings) -> LoadedPool:
    """Every record of ``source`` as pool rows (to be labelled by ``relabel``), with its load report. Raises
    ``SourceError`` on bad input as ``load_pool`` does, naming the file and the record."""
    builder = PoolBuilder(settings.fmt, settings.skip_malformed, settings.max_record_bytes, settings.columns)
    read_source(source, "", builder)
    return builder.finish()


def write_part(rows: pl.DataFrame, report: LoadReport, name: str, label: str, path: str | os.PathLike[str]) -> None:
    """Store a source's rows as parquet at ``path`` (which the caller makes atomic), labelled as ``name`` and
    ``label`` (see ``relabel``), with its load report and its facet counts (``part_facets``) in the file's metadata:
    a pool's mix is then the sum of its parts', never a scan of its text. ``rows`` may carry each row's ``script``
    (``composition.scripts``), which is then not computed again, and is not stored in the part."""
    counts = {key: value for key, value in report.to_dict().items() if key != "files"}
    labelled = relabel(rows, name, label)
    table = labelled.select(list(POOL_SCHEMA)).to_arrow().cast(ARROW_POOL_SCHEMA)
    mixes = value_counts(facet_frame(labelled))
    table = table.replace_schema_metadata(
        {_REPORT_KEY: json.dumps(counts).encode(), _FACETS_KEY: json.dumps(mixes).encode()}
    )
    pq.write_table(table, path, compression="zstd", row_group_size=POOL_ROW_GROUP)


def part_report(handle: IO[bytes] | str | os.PathLike[str], where: str) -> LoadReport:
    """The load report stored in a part's metadata; ``where`` names the part in errors."""
    try:
        metadata = pq.read_schema(handle).metadata or {}
        return LoadReport(**json.loads(metadata[_REPORT_KEY]))
    except (KeyError, TypeError, ValueError, OSError, pa.ArrowException) as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise SourceError(f"{where}: not a pool part ({problem}); delete it to read the source again") from exc


def part_facets(handle: IO[bytes] | str | os.PathLike[str]) -> dict[str, dict[str, int]] | None:
    """How many of a part's rows have each value of each facet (``composition.FACETS``), as stored with it; None
    for a part stored before parts held them."""
    stored = (pq.read_schema(handle).metadata or {}).get(_FACETS_KEY)
    return None if stored is None else json.loads(stored)


def read_part_rows(handle: IO[bytes] | str | os.PathLike[str], where: str) -> pl.DataFrame:
    """A stored part's rows, with exactly ``POOL_SCHEMA``."""
    if not isinstance(handle, str | os.PathLike):
        handle.seek(0)
    try:
        frame = pl.from_arrow(pq.read_table(handle))
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{where}: not a readable pool part ({exc}); delete it to read the source again") from exc
    assert isinstance(frame, pl.DataFrame)
    return frame.select(list(POOL_SCHEMA)).cast(dict(POOL_SCHEMA))


def relabel(rows: pl.DataFrame, name: str, label: str) -> pl.DataFrame:
    """A part's rows as the pool holds them: ids ``"{name}:{index}"`` and ``source`` ``label``, as ``load_pool``
    would give them."""
    return rows.with_columns(
        id=pl.lit(f"{name}:") + pl.col("index").cast(pl.String), source=pl.lit(label, dtype=pl.String)
    )
