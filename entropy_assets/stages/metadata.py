"""How a step's result becomes asset metadata and is read back: what every result module (``pool_result``,
``scores_result``, ``shard_selection_result``, ``subset_result``, ``training_result``, ``law_result``) shares.

A result becomes asset metadata through ``to_metadata()`` and is read back from it through ``from_metadata()``;
each result's module is the only place where its metadata keys are spelled. Assets, the command line, audits,
retention and the law all read these results, never the keys. Values are plain (str, int, float, bool, dict),
except text meant as a path (``FilePath``), as markdown (``Markdown``), a table (``Table``) or the columns of a
stored file (``ColumnSchema``), which the Dagster layer shows as such and reads back as they were written.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from entropy_assets.storage import Storage


class FilePath(str):
    """Metadata text that is a path to a file."""


class Markdown(str):
    """Metadata text shown as markdown."""


@dataclass(frozen=True)
class Table:
    """Metadata shown as a table: ``columns`` as (name, kind) pairs, kind one of string, int or float; one mapping
    per row (a cell is a str, int, float, bool or None). A table is read back as it was written (the Dagster layer's
    ``plain_value``): where its cells are exact (a subset's composition, its churn), the result reads its figures
    from it; where they are rounded for reading (``for_reading``), the exact figures are kept elsewhere (another
    key, or a stored file such as the law's ``fit.json``)."""

    columns: tuple[tuple[str, str], ...]
    rows: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class ColumnSchema:
    """The columns of a stored file, as (name, type, description) each: shown as Dagster's column schema
    (``dagster/column_schema``), so that the UI says what the file holds."""

    columns: tuple[tuple[str, str, str], ...]


def column_schema(frame: pl.DataFrame, descriptions: Mapping[str, str]) -> ColumnSchema:
    """The columns of ``frame`` as written to parquet: each name, its polars type and, where known, what it holds."""
    return ColumnSchema(tuple((name, str(dtype), descriptions.get(name, "")) for name, dtype in frame.schema.items()))


def for_reading(value: float | None, digits: int = 4) -> float | None:
    """A number rounded to ``digits`` significant digits for a table a person reads; None stays None."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


class MetadataError(ValueError):
    """A materialization's metadata lacks what a result needs, or holds a value of the wrong kind."""


def markdown_image(png: bytes, title: str) -> Markdown:
    """A PNG embedded in markdown as a data URI (Dagster has no image metadata type)."""
    return Markdown(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


_EMBEDDED_PNG = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]*)\)")


def embedded_png(markdown: str) -> bytes:
    """The PNG that ``markdown_image`` embedded."""
    found = _EMBEDDED_PNG.fullmatch(markdown)
    if found is None:
        raise MetadataError("expected a markdown image with an embedded PNG")
    return base64.b64decode(found.group(1))


def nan_if_none(value: float | None) -> float:
    """A number that may be absent, as metadata (Dagster charts floats; NaN marks the absence)."""
    return float("nan") if value is None else value


def finite_or_none(value: Any) -> float | None:
    """A number read back from metadata, None where ``nan_if_none`` marked its absence."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class MetadataReader:
    """Typed access to metadata values, with errors that name the missing or mistyped key."""

    def __init__(self, values: Mapping[str, Any], what: str) -> None:
        self.values, self.what = values, what

    def has(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.values:
            raise MetadataError(f"{self.what} metadata has no {key!r}")
        value = self.values[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise MetadataError(f"{self.what} metadata {key!r} is a {type(value).__name__}, which it cannot be")
        return value

    def text(self, key: str) -> str:
        return str(self.get(key, str))

    def integer(self, key: str) -> int:
        return int(self.get(key, int))

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float)))

    def mapping(self, key: str) -> dict[str, Any]:
        return dict(self.get(key, dict))

    def table(self, key: str) -> Table:
        return self.get(key, Table)

    def holds(self, key: str, kind: type) -> bool:
        """Whether ``key`` is present and holds a ``kind`` (an entry whose form changed holds an earlier one in
        older materializations)."""
        return isinstance(self.values.get(key), kind)

    def sequence(self, key: str) -> list[Any]:
        """A list; empty when the key is absent (metadata written before it existed)."""
        return list(self.get(key, list)) if key in self.values else []


class StoredResult(Protocol):
    """A result with a versioned file: where it is (``path``), and the same relative to the storage (``file``)."""

    path: str
    file: str

    @property
    def inputs(self) -> tuple[str, ...]: ...


def written_under(result: StoredResult) -> Storage:
    """The storage a result's files were written to: its recorded path less its relative file. Reading a recorded
    file through it refuses one outside that storage."""
    return Storage(result.path[: -len(result.file)] if result.path.endswith(result.file) else result.path)
