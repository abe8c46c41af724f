"""Which column mapping reads which source: one for a whole load, or one per path (a file, a folder above it, or a
glob), so that files of different layouts can share a pool. The mapping that read a row is found again from the
row's ``source``, to read its labels and its prompt and completion apart."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from entropy_assets.records import ColumnMapping, ReadRecord, RecordFormat, read_record

from .discovery import TEXT_SUFFIXES, suffix_of


@dataclass(frozen=True)
class SourceColumns:
    """The column mapping of each source: that of the first entry of ``by_path`` whose path is the source, a
    folder above it or a glob matching it; else ``default`` (None: the usual field names)."""

    default: ColumnMapping | None = None
    by_path: tuple[tuple[str, ColumnMapping], ...] = ()

    @classmethod
    def of(
        cls, default: ColumnMapping | None = None, by_path: Mapping[str, ColumnMapping] | None = None
    ) -> SourceColumns:
        """From a mapping for every source and mappings by path, as settings give them."""
        return cls(default, tuple((by_path or {}).items()))

    def for_source(self, label: str) -> ColumnMapping | None:
        """The mapping that reads the source labelled ``label`` (its path as the load found it); none for a text
        file, whose lines have no fields to map."""
        if suffix_of(label, TEXT_SUFFIXES) is not None:
            return None
        for pattern, mapping in self.by_path:
            if _matches(label, pattern):
                return mapping
        return self.default

    def describe(self) -> dict[str, Any] | None:
        """JSON-ready, for versions; None when every source is read with the usual names."""
        if self.default is None and not self.by_path:
            return None
        return {
            "columns": _dump(self.default),
            "columns_by_path": {pattern: _dump(mapping) for pattern, mapping in self.by_path},
        }

    def read(self, record_json: str, fmt: RecordFormat, source: str) -> ReadRecord:
        """A pool row's record (its ``record``, ``format`` and ``source``) read again as the pool read it."""
        return read_record(json.loads(record_json), fmt, self.for_source(source))


def labels_column(frame: pl.DataFrame, columns: SourceColumns) -> pl.Series:
    """Each row's labels as JSON (``ReadRecord.labels``: an unpaired preference's label, stepwise labels, OpenAI
    message weights), null where a record has none; from the ``record``, ``format`` and ``source`` columns."""
    values: list[str | None] = []
    mappings: dict[str, ColumnMapping | None] = {}
    for record, fmt, source in zip(frame["record"], frame["format"], frame["source"], strict=True):
        if source not in mappings:
            mappings[source] = columns.for_source(source)
        labels = read_record(json.loads(record), fmt, mappings[source]).labels
        values.append(json.dumps(labels, ensure_ascii=False, default=str) if labels else None)
    return pl.Series("labels", values, dtype=pl.String)


def _dump(mapping: ColumnMapping | None) -> dict[str, str] | None:
    return None if mapping is None else mapping.model_dump(exclude_none=True)


def _matches(label: str, pattern: str) -> bool:
    """Whether the source ``label`` is ``pattern``, lies in the folder ``pattern`` or matches it as a glob."""
    if fnmatch.fnmatchcase(label, pattern):
        return True
    source, target = Path(os.path.abspath(label)), Path(os.path.abspath(pattern))
    return source == target or target in source.parents or fnmatch.fnmatchcase(str(source), str(target))
