"""The pool frame and how records become its rows: each record's canonical text, size, content hash and its
original JSON, with every dropped record counted by reason."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import polars as pl

from entropy_assets.records import ColumnMapping, RecordError, RecordFormat, read_record

from .errors import SourceError

POOL_SCHEMA = pl.Schema(
    {
        "id": pl.String,
        "source": pl.String,
        "index": pl.Int64,
        "format": pl.String,
        "text": pl.String,
        "n_bytes": pl.Int64,
        "content_hash": pl.String,
        "record": pl.String,
    }
)

MAX_RECORD_BYTES = 64 * 1024 * 1024
"""Default ``max_record_bytes``: a record (a line of a line format, else its JSON) larger than this is dropped as
``too_large`` or refused. Line formats are streamed, so memory stays bounded by this, not by the file."""

MAX_JSON_DEPTH = 256
"""Records nested deeper than this many arrays/objects are malformed: deeper values would exhaust Python's
recursion in the JSON parser and encoders, and no instruction-tuning format needs them."""

SURROGATE = re.compile("[\ud800-\udfff]")
RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def encode_record(record: Any) -> tuple[bytes, bool]:
    """A record as compact UTF-8 JSON, and whether lone surrogates in it had to be replaced by U+FFFD.

    orjson is about 5x faster than the standard library here; it refuses integers beyond 64 bits, non-string keys,
    lone surrogates and nesting past 254 levels, which the standard library then encodes once the depth is checked.
    Raises ``RecordError`` for what cannot be JSON at all.
    """
    try:
        return orjson.dumps(record, default=str), False
    except (orjson.JSONEncodeError, TypeError):
        pass
    depth = _json_depth(record)
    if depth > MAX_JSON_DEPTH:
        raise RecordError(f"nested deeper than {MAX_JSON_DEPTH} levels of arrays/objects")
    try:
        text = RECORD_ENCODER.encode(record)
    except (ValueError, TypeError, RecursionError) as exc:
        raise RecordError(f"cannot be stored as JSON ({type(exc).__name__}: {exc})") from exc
    text, replaced = SURROGATE.subn("\ufffd", text)
    return text.encode("utf-8"), replaced > 0


def _json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How many arrays/objects deep ``value`` nests, counted without recursion; stops once past ``limit`` (so a
    cyclic value ends too)."""
    if not isinstance(value, dict | list | tuple):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return deepest


@dataclass
class LoadReport:
    """What loading did: records read (kept + dropped), drops by reason, repaired text, formats seen.

    ``formats`` counts kept records; ``invalid_utf8`` counts records whose bytes were not valid UTF-8 or whose
    JSON held lone surrogate escapes, both replaced by U+FFFD. ``dropped`` counts ``empty`` text, ``malformed``
    records (skipped with ``skip_malformed``) and ``too_large`` ones (over ``max_record_bytes``, likewise).
    """

    files: list[str] = field(default_factory=list)
    records_read: int = 0
    records_kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"empty": 0, "malformed": 0, "too_large": 0})
    invalid_utf8: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, for asset metadata and logs."""
        return asdict(self)

    def merge(self, other: LoadReport, label: str) -> None:
        """Count ``other`` (the report of one source, ``label``) in this one."""
        self.files.append(label)
        self.records_read += other.records_read
        self.records_kept += other.records_kept
        self.invalid_utf8 += other.invalid_utf8
        self.bytes += other.bytes
        for reason, count in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        formats = Counter(self.formats) + Counter(other.formats)
        self.formats = dict(sorted(formats.items()))


@dataclass
class LoadedPool:
    """The pool frame (``POOL_SCHEMA``) and the report of how it was loaded."""

    frame: pl.DataFrame
    report: LoadReport


class PoolBuilder:
    """Accumulates pool columns record by record, counting what is dropped and why."""

    def __init__(
        self,
        fmt: RecordFormat | None,
        skip_malformed: bool,
        max_record_bytes: int = MAX_RECORD_BYTES,
        columns: ColumnMapping | None = None,
    ) -> None:
        if max_record_bytes < 1:
            raise ValueError(f"max_record_bytes must be >= 1, got {max_record_bytes}")
        self.fmt = fmt
        self.columns = columns
        self.skip_malformed = skip_malformed
        self.max_record_bytes = max_record_bytes
        self.report = LoadReport()
        self._ids: list[str] = []
        self._sources: list[str] = []
        self._indexes: list[int] = []
        self._formats: list[str] = []
        self._texts: list[str] = []
        self._sizes: list[int] = []
        self._hashes: list[str] = []
        self._records: list[str] = []

    def add(
        self,
        record: Any,
        *,
        name: str,
        label: str,
        index: int,
        line: int | None = None,
        repaired: bool = False,
        fmt: RecordFormat | None = None,
    ) -> None:
        """Add one record, or count it as too large, malformed or empty; ``line`` is its line number in a line
        format, ``fmt`` the format of a record the reader made itself (a line of text, read without the column
        mapping)."""
        report = self.report
        report.records_read += 1
        try:
            encoded, fixed = encode_record(record)
            if len(encoded) > self.max_record_bytes:
                self.too_large(locate(label, index, line), len(encoded), counted=True)
                return
            read = read_record(record, fmt or self.fmt, None if fmt else self.columns)
            record_fmt, text = read.format, read.text
        except RecordError as exc:
            report.invalid_utf8 += int(repaired)
            self.malformed(f"{locate(label, index, line)}: {exc}", counted=True)
            return
        if not text.strip():
            report.invalid_utf8 += int(repaired)
            report.dropped["empty"] += 1
            return
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates in a record built in memory
            text = SURROGATE.sub("\ufffd", text)
            data, fixed = text.encode("utf-8"), True
        report.invalid_utf8 += int(repaired or fixed)
        self._ids.append(f"{name}:{index}")
        self._sources.append(label)
        self._indexes.append(index)
        self._formats.append(record_fmt)
        self._texts.append(text)
        self._sizes.append(len(data))
        self._hashes.append(hashlib.blake2b(data, digest_size=16).hexdigest())
        self._records.append(encoded.decode("utf-8"))
        report.bytes += len(data)

    def malformed(self, message: str, *, counted: bool = False, reason: str = "malformed") -> None:
        """Skip (and count under ``reason``) a bad record when skipping is on; otherwise stop with the message."""
        if not self.skip_malformed:
            raise SourceError(message)
        if not counted:
            self.report.records_read += 1
        self.report.dropped[reason] += 1

    def too_large(self, where: str, size: int, *, counted: bool = False) -> None:
        """Skip (and count) a record over ``max_record_bytes``, or stop with a message giving its size."""
        self.malformed(
            f"{where}: the record is {size:,} bytes, more than max_record_bytes={self.max_record_bytes:,}",
            counted=counted,
            reason="too_large",
        )

    def finish(self) -> LoadedPool:
        columns = [
            self._ids,
            self._sources,
            self._indexes,
            self._formats,
            self._texts,
            self._sizes,
            self._hashes,
            self._records,
        ]
        frame = pl.DataFrame(dict(zip(POOL_SCHEMA, columns, strict=True)), schema=POOL_SCHEMA)
        self.report.records_kept = frame.height
        self.report.formats = dict(sorted(Counter(self._formats).items()))
        return LoadedPool(frame=frame, report=self.report)


def locate(label: str, index: int, line: int | None) -> str:
    """How an error message names a record: by its line in a line format, else by its index."""
    return f"{label} record {index}" if line is None else f"{label} line {line} (record {index})"
