"""Writing a selection back in its records' own form: JSON, JSON lines (gzipped or not) or parquet."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from .atomic import write_atomically
from .discovery import suffix_of
from .errors import SourceError

WRITABLE_SUFFIXES: tuple[str, ...] = (
    ".json.gz",
    ".jsonl.gz",
    ".ndjson.gz",
    ".json",
    ".jsonl",
    ".ndjson",
    ".parquet",
)


AS_INPUT = "input"
"""An export suffix that means: the suffix the records' own files share."""


def export_suffix(setting: str, sources: Iterable[str]) -> str:
    """The suffix records are exported with: ``setting``, or for ``AS_INPUT`` the writable suffix that all of their
    source files (``sources``, their labels) share, ``.jsonl`` when they share none (text files, saved datasets,
    several file types)."""
    if setting != AS_INPUT:
        return setting
    found = {suffix_of(source, WRITABLE_SUFFIXES) for source in sources}
    shared = found.pop() if len(found) == 1 else None
    return shared if shared is not None else ".jsonl"


def write_records(frame: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the frame's original records to ``path`` (.json, .jsonl, .ndjson, optionally .gz, or .parquet).

    The file appears whole or not at all: it is written next to ``path`` and renamed into place, so a failed
    write leaves any existing file untouched.
    """
    path = Path(path)
    suffix = suffix_of(path.name, WRITABLE_SUFFIXES)
    if suffix is None:
        raise SourceError(f"{path}: cannot write records as this file type; use one of {', '.join(WRITABLE_SUFFIXES)}")
    if "record" not in frame.columns:
        raise SourceError(f"{path}: the frame has no 'record' column to write back")
    records = frame.get_column("record")
    if records.null_count():
        raise SourceError(f"{path}: {records.null_count()} rows of the frame have no record")

    def write(tmp: Path) -> None:
        if suffix == ".parquet":
            _write_parquet_records(tmp, [json.loads(record) for record in records], path)
        elif suffix.startswith(".json."):
            _write_text(tmp, _json_array_chunks(records), gz=True)
        elif suffix == ".json":
            _write_text(tmp, _json_array_chunks(records), gz=False)
        else:
            _write_text(tmp, (f"{record}\n" for record in records), gz=suffix.endswith(".gz"))

    return write_atomically(path, write)


def _json_array_chunks(records: Iterable[str]) -> Iterator[str]:
    yield "["
    for i, record in enumerate(records):
        yield ("\n" if i == 0 else ",\n") + record
    yield "\n]\n"


def _write_parquet_records(tmp: Path, rows: list[Any], path: Path) -> None:
    """Rows as parquet columns; types are inferred over all rows and never coerced (1 and "1" do not mix)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_struct_array(pa.array(rows)) if rows else pa.table({})
        pq.write_table(table, tmp)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise SourceError(f"{path}: these records cannot be stored as parquet ({exc}); write .jsonl instead") from exc


def _write_text(path: Path, chunks: Iterable[str], *, gz: bool) -> None:
    with open(path, "wb") as raw:
        binary: io.BufferedIOBase | gzip.GzipFile = (
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if gz else raw
        )
        with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as out:
            out.writelines(chunks)
