"""Reading data files into a pool frame, and writing a selection back in the records' original form.

A pool is a polars frame with one row per kept record (see ``POOL_SCHEMA``): its canonical text, the text's
size and content hash, and the original record as JSON so that a selection can be written back unchanged.
Supported inputs: ``.json`` (an array of records), ``.jsonl``/``.ndjson``, gzip of either, ``.parquet``,
``.txt`` (one document per non-blank line), folders saved by ``datasets.Dataset.save_to_disk``, and dataset
names that ``datasets.load_dataset`` resolves.

Hostile input ends in a ``SourceError`` naming the file and the line or record, or in counted drops with
``skip_malformed``: line formats are streamed, so a huge line costs at most ``max_record_bytes`` of memory; JSON
nested deeper than ``MAX_JSON_DEPTH`` is malformed; a file that vanishes or changes while read is an error.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import os
import re
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl

from entropy_assets.records import RecordError, RecordFormat, canonical_text, detect_format, json_type_name

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_JSON_FILE_BYTES",
    "MAX_RECORD_BYTES",
    "POOL_SCHEMA",
    "SUPPORTED_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "LoadReport",
    "LoadedPool",
    "SourceError",
    "load_hf_dataset",
    "load_pool",
    "pool_from_records",
    "read_pool",
    "write_pool",
    "write_records",
]

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

MAX_JSON_FILE_BYTES = 1024 * 1024 * 1024
"""A ``.json`` file (decompressed) larger than this is refused: one JSON document is parsed whole, which takes
several times its size in memory, whereas ``.jsonl`` is read line by line. 1 GiB admits the largest public
instruction sets stored as one array (ShareGPT's is about 0.7 GB)."""

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
WRITABLE_SUFFIXES: tuple[str, ...] = (
    ".json.gz",
    ".jsonl.gz",
    ".ndjson.gz",
    ".json",
    ".jsonl",
    ".ndjson",
    ".parquet",
)

_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD])[c-fC-F][0-9a-fA-F]{2})"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_GLOB_CHARS = frozenset("*?[")
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
_UTF8_BOM = b"\xef\xbb\xbf"
_LINE_CHUNK = 1024 * 1024
_Line = tuple[int, bytes | int, bool]
"""A line of a line format: its number, its bytes (or its size, when over the limit), whether a newline ended it."""
_LONG_NUMBER = re.compile(r"\d{4000,}")


def _encode_record(record: Any) -> tuple[bytes, bool]:
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
        text = _RECORD_ENCODER.encode(record)
    except (ValueError, TypeError, RecursionError) as exc:
        raise RecordError(f"cannot be stored as JSON ({type(exc).__name__}: {exc})") from exc
    text, replaced = _SURROGATE.subn("\ufffd", text)
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


class SourceError(ValueError):
    """Input that cannot be read: the message names the file and, where it applies, the line or record."""


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


@dataclass
class LoadedPool:
    """The pool frame (``POOL_SCHEMA``) and the report of how it was loaded."""

    frame: pl.DataFrame
    report: LoadReport


@dataclass(frozen=True)
class _Source:
    label: str
    kind: str
    path: Path | None = None
    min_depth: int = 1
    gz: bool = False
    split: str = "train"
    hub_kwargs: Mapping[str, Any] = field(default_factory=dict)


class _PoolBuilder:
    """Accumulates pool columns record by record, counting what is dropped and why."""

    def __init__(
        self, fmt: RecordFormat | None, skip_malformed: bool, max_record_bytes: int = MAX_RECORD_BYTES
    ) -> None:
        if max_record_bytes < 1:
            raise ValueError(f"max_record_bytes must be >= 1, got {max_record_bytes}")
        self.fmt = fmt
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
        format."""
        report = self.report
        report.records_read += 1
        try:
            encoded, fixed = _encode_record(record)
            if len(encoded) > self.max_record_bytes:
                self.too_large(_where(label, index, line), len(encoded), counted=True)
                return
            record_fmt = fmt or self.fmt or detect_format(record)
            text = canonical_text(record, record_fmt)
        except RecordError as exc:
            report.invalid_utf8 += int(repaired)
            self.malformed(f"{_where(label, index, line)}: {exc}", counted=True)
            return
        if not text.strip():
            report.invalid_utf8 += int(repaired)
            report.dropped["empty"] += 1
            return
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates in a record built in memory
            text = _SURROGATE.sub("\ufffd", text)
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


def load_pool(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    fmt: RecordFormat | None = None,
    skip_malformed: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> LoadedPool:
    """Load files, folders (recursively, sorted), globs or dataset names into one pool.

    Each record's format is detected unless ``fmt`` is given (``.txt`` lines are always text). Records with
    empty canonical text are dropped and counted; malformed ones, and ones over ``max_record_bytes``, raise
    ``SourceError`` unless ``skip_malformed``. A file that cannot be read through (a ``.json`` that does not
    parse, a corrupt gzip or parquet, one that vanishes or changes while read) raises even then, since its
    records cannot be located or counted. Ids are ``"{name}:{index}"`` with ``name`` the file name, lengthened by
    parent folders only where two loaded files share a name.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    sources = _dedupe(source for item in items for source in _expand(item))
    builder = _PoolBuilder(fmt, skip_malformed, max_record_bytes)
    for source, name in zip(sources, _source_names(sources), strict=True):
        builder.report.files.append(source.label)
        _read_source(source, name, builder)
    return builder.finish()


def source_files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files ``load_pool`` would read for ``paths`` (saved datasets as their folders), sorted."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    sources = _dedupe(source for item in items for source in _expand(item))
    return sorted({source.path for source in sources if source.path is not None})


def data_files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Every file behind ``source_files``: saved datasets' folders walked in name order."""
    files: list[Path] = []
    for path in source_files(paths):
        try:
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
        except OSError as exc:
            raise SourceError(f"{path}: cannot be listed ({exc.strerror or exc}); did it change while read?") from exc
    return files


def file_hashes(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """The sha256 of every file at ``paths``, by path: what an audit needs to say exactly which bytes a data
    version was."""
    hashes: dict[str, str] = {}
    for file in data_files(paths):
        try:
            with open(file, "rb") as handle:
                hashes[str(file)] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise SourceError(f"{file}: cannot be read for its hash ({exc.strerror or exc}); was it removed?") from exc
    return hashes


def data_version(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], hashes: dict[str, str] | None = None
) -> str:
    """A version of the data at ``paths`` from the content of every file: any byte changed, a file added or
    removed, gives a new version; re-reading unchanged files gives the same one. ``hashes`` (from
    ``file_hashes``) saves reading the files again."""
    digest = hashlib.sha256()
    for name, value in (hashes if hashes is not None else file_hashes(paths)).items():
        path = Path(name)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SourceError(f"{path}: vanished after it was hashed ({exc.strerror or exc})") from exc
        digest.update(f"{path.name}\0{size}\0".encode())
        digest.update(bytes.fromhex(value))
    return digest.hexdigest()[:24]


def load_hf_dataset(
    name_or_path: str,
    split: str = "train",
    *,
    fmt: RecordFormat | None = None,
    skip_malformed: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
    **kwargs: Any,
) -> LoadedPool:
    """Load one split of a ``save_to_disk`` folder or of anything ``datasets.load_dataset`` resolves.

    ``kwargs`` go to ``load_dataset`` (e.g. ``data_files``); Hub names need network access.
    """
    path = Path(name_or_path)
    if path.is_dir() and _is_saved_dataset(path):
        name = path.resolve().name
        if (path / "dataset_dict.json").is_file():
            path = path / split
            name = f"{name}/{split}"
        source = _Source(label=str(path), kind="hf_disk", path=path)
    else:
        source = _Source(label=name_or_path, kind="hub", split=split, hub_kwargs=kwargs)
        name = f"{name_or_path}/{split}"
    builder = _PoolBuilder(fmt, skip_malformed, max_record_bytes)
    builder.report.files.append(source.label)
    _read_source(source, name, builder)
    return builder.finish()


def pool_from_records(
    records: Iterable[Any],
    source: str,
    *,
    fmt: RecordFormat | None = None,
    skip_malformed: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> LoadedPool:
    """Build a pool from records already in memory; ``source`` names them in ids and error messages."""
    builder = _PoolBuilder(fmt, skip_malformed, max_record_bytes)
    builder.report.files.append(source)
    for index, record in enumerate(records):
        builder.add(record, name=source, label=source, index=index)
    return builder.finish()


def write_records(frame: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the frame's original records to ``path`` (.json, .jsonl, .ndjson, optionally .gz, or .parquet).

    The file appears whole or not at all: it is written next to ``path`` and renamed into place, so a failed
    write leaves any existing file untouched.
    """
    path = Path(path)
    suffix = _suffix(path.name, WRITABLE_SUFFIXES)
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


def write_pool(frame: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Store the pool columns of ``frame`` as parquet, atomically."""
    path = Path(path)
    missing = [name for name in POOL_SCHEMA if name not in frame.columns]
    if missing:
        raise SourceError(f"{path}: the frame lacks pool columns {missing}")
    pool = frame.select(list(POOL_SCHEMA)).cast(dict(POOL_SCHEMA))
    return write_atomically(path, pool.write_parquet)


def read_pool(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a pool stored by ``write_pool``, with exactly ``POOL_SCHEMA``."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such pool file")
    try:
        frame = pl.read_parquet(path)
    except (Exception, pl.exceptions.PanicException) as exc:  # polars panics on some damaged files
        raise SourceError(f"{path}: not a readable parquet file ({exc})") from exc
    missing = [name for name in POOL_SCHEMA if name not in frame.columns]
    if missing:
        raise SourceError(f"{path}: not a pool file; columns {missing} are missing")
    return frame.select(list(POOL_SCHEMA)).cast(dict(POOL_SCHEMA))


def _expand(item: str | os.PathLike[str]) -> list[_Source]:
    text = os.fspath(item)
    path = Path(text)
    if path.exists():
        return _expand_existing(path, explicit=True)
    if _GLOB_CHARS & set(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise SourceError(f"{text}: no files match this pattern")
        return [source for match in matches for source in _expand_existing(Path(match), explicit=False)]
    if _HUB_NAME.fullmatch(text) and _suffix(text, SUPPORTED_SUFFIXES) is None:
        return [_Source(label=text, kind="hub")]
    raise SourceError(f"{text}: no such file or directory")


def _expand_existing(path: Path, *, explicit: bool) -> list[_Source]:
    if path.is_dir():
        return _walk(path)
    suffix = _suffix(path.name, SUPPORTED_SUFFIXES)
    if suffix is None:
        if explicit:
            raise SourceError(f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
        return []
    if not path.is_file():  # opening a named pipe waits for a writer: it would hang the load
        raise SourceError(f"{path}: not a regular file (a named pipe, socket or device); data must be in files")
    return [_Source(label=str(path), kind=_FILE_KINDS[suffix], path=path, gz=suffix.endswith(".gz"))]


def _walk(root: Path) -> list[_Source]:
    """Supported files and saved datasets under ``root``, in sorted order, skipping hidden names."""
    if _is_saved_dataset(root):
        return _saved_dataset_sources(root)
    sources: list[_Source] = []
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


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
    )


def _saved_dataset_sources(root: Path) -> list[_Source]:
    dict_file = root / "dataset_dict.json"
    if not dict_file.is_file():
        return [_Source(label=str(root), kind="hf_disk", path=root)]
    try:
        splits = json.loads(dict_file.read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SourceError(f"{dict_file}: not a valid dataset_dict.json ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(splits, list) and all(isinstance(split, str) and split for split in splits)):
        raise SourceError(f"{dict_file}: not a valid dataset_dict.json ('splits' must be a list of split names)")
    return [_Source(label=str(root / split), kind="hf_disk", path=root / split, min_depth=2) for split in splits]


def _dedupe(sources: Iterable[_Source]) -> list[_Source]:
    seen: set[str] = set()
    unique: list[_Source] = []
    for source in sources:
        key = str(source.path.resolve()) if source.path is not None else f"hub:{source.label}"
        if key not in seen:
            seen.add(key)
            unique.append(source)
    return unique


def _source_names(sources: Sequence[_Source]) -> list[str]:
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


def _read_source(source: _Source, name: str, builder: _PoolBuilder) -> None:
    label = source.label
    if source.kind in ("hf_disk", "hub"):
        for index, record in enumerate(_dataset_rows(source)):
            builder.add(record, name=name, label=label, index=index)
        return
    assert source.path is not None
    if source.kind == "parquet":
        for index, record in enumerate(_parquet_rows(source)):
            builder.add(record, name=name, label=label, index=index)
        return
    if source.kind == "json":
        _read_json(source, name, builder)
    else:
        with _opened(source) as handle:
            lines = _lines(handle, label, builder.max_record_bytes)
            if source.kind == "jsonl":
                _read_jsonl(lines, name, label, builder)
            else:
                _read_txt(lines, name, label, builder)


def _where(label: str, index: int, line: int | None) -> str:
    return f"{label} record {index}" if line is None else f"{label} line {line} (record {index})"


@contextmanager
def _opened(source: _Source) -> Iterator[IO[bytes]]:
    """The file (decompressed when gzip) for reading; raises ``SourceError`` if it is gone, or if its size or
    modification time changed by the time reading ends (it was written to meanwhile)."""
    assert source.path is not None
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 - closed by the with-block below
    except OSError as exc:
        raise SourceError(f"{source.label}: cannot open ({exc.strerror or exc}); was it removed?") from exc
    with raw:
        before = os.fstat(raw.fileno())

        def changed() -> SourceError | None:
            after = os.fstat(raw.fileno())
            if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
                return None
            return SourceError(
                f"{source.label}: changed while it was read ({before.st_size:,} bytes, now {after.st_size:,}); "
                "load it again once it is written"
            )

        try:
            if source.gz:
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    yield unzipped
            else:
                yield raw
        except SourceError as error:  # a half-written last line, say: the change is the cause to report
            if (change := changed()) is not None:
                raise change from error
            raise
        if (change := changed()) is not None:
            raise change


def _lines(handle: IO[bytes], label: str, limit: int) -> Iterator[_Line]:
    """``(line number, bytes without the newline, whether a newline ended it)`` for each line (only the last may
    lack one); a line over ``limit`` bytes comes as its size instead, its bytes dropped while read, so memory stays
    bounded by ``limit`` whatever the line."""
    line_no = 0
    try:
        while line := handle.readline(_LINE_CHUNK):
            line_no += 1
            if line.endswith(b"\n"):
                line = line[:-1]
                yield line_no, line if len(line) <= limit else len(line), True
            else:
                yield line_no, *_rest_of_line(handle, line, limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{label} line {line_no + 1}: cannot read further ({exc})") from exc


def _rest_of_line(handle: IO[bytes], start: bytes, limit: int) -> tuple[bytes | int, bool]:
    """A line longer than one read chunk (or the file's last line): its bytes, or its size once it passes
    ``limit``, and whether a newline ended it; chunks are kept only while the line may still fit."""
    parts: list[bytes] | None = [start]
    size = len(start)
    chunk = start
    while not chunk.endswith(b"\n") and (chunk := handle.readline(_LINE_CHUNK)):
        size += len(chunk)
        if parts is not None:
            parts.append(chunk)
            if size > limit + 1:
                parts = None
    ended = chunk.endswith(b"\n")
    if ended:
        size -= 1
    if parts is None or size > limit:
        return size, ended
    return b"".join(parts)[:size], ended


def _decode_line(raw: bytes, line_no: int) -> tuple[str, bool]:
    """One line as text (a leading BOM dropped) and whether invalid UTF-8 bytes had to be replaced."""
    if line_no == 1 and raw.startswith(_UTF8_BOM):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _parse_json(text: str) -> Any:
    """``json.loads``, with nesting beyond the parser's recursion and over-long numbers as ``ValueError``."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels of arrays/objects") from exc


def _json_error(exc: ValueError) -> str:
    """What is wrong, from a ``json.loads`` error (an over-long integer raises a plain ``ValueError``)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg}: column {exc.colno})"
    if "integer string conversion" in str(exc):
        return f"a number is too long to read ({str(exc).split(';')[0]})"
    return str(exc)


def _read_json(source: _Source, name: str, builder: _PoolBuilder) -> None:
    label = source.label
    with _opened(source) as handle:
        size = 0 if source.gz else os.fstat(handle.fileno()).st_size
        try:
            data = handle.read(MAX_JSON_FILE_BYTES + 1) if size <= MAX_JSON_FILE_BYTES else b""
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{label}: cannot read ({exc})") from exc
    if max(size, len(data)) > MAX_JSON_FILE_BYTES:
        raise SourceError(
            f"{label}: larger than {MAX_JSON_FILE_BYTES:,} bytes; a .json file is parsed whole, so store this "
            "data as .jsonl (one record per line), which is read line by line"
        )
    text, repaired = _decode(data)
    del data
    if not text.strip():
        return
    try:
        parsed = _parse_json(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            with _opened(source) as handle:
                _read_jsonl(_lines(handle, label, builder.max_record_bytes), name, label, builder)
            return
        raise SourceError(f"{label} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from exc
    except ValueError as exc:
        number = _LONG_NUMBER.search(text)
        where = f"{label} line {text.count(chr(10), 0, number.start()) + 1}" if number else label
        raise SourceError(f"{where}: {_json_error(exc)}") from exc
    records = _json_records(parsed, label)
    fix_surrogates = _LONE_SURROGATE_ESCAPE.search(text) is not None
    del text, parsed
    for index, record in enumerate(records):
        fixed = False
        try:
            if fix_surrogates:
                record, fixed = _replace_surrogates(record)
            if repaired and not fixed:
                fixed = "\ufffd" in _RECORD_ENCODER.encode(record)
        except (RecordError, RecursionError, ValueError) as exc:
            builder.malformed(f"{_where(label, index, None)}: {exc}")
            continue
        builder.add(record, name=name, label=label, index=index, repaired=fixed)


def _json_records(parsed: Any, label: str) -> list[Any]:
    """The records of a parsed .json file: an array, one record object, or an object holding one array."""
    if isinstance(parsed, list):
        return parsed
    if isinstance(parsed, dict):
        try:
            detect_format(parsed)
            return [parsed]
        except RecordError:
            pass
        arrays = [key for key, value in parsed.items() if isinstance(value, list)]
        if len(arrays) == 1:
            return parsed[arrays[0]]
        raise SourceError(
            f"{label}: expected a JSON array of records or an object holding one array, "
            f"got an object with keys {sorted(parsed)[:20]}"
        )
    raise SourceError(f"{label}: expected a JSON array of records, got {json_type_name(parsed)}")


def _record_lines(
    lines: Iterable[_Line], label: str, builder: _PoolBuilder
) -> Iterator[tuple[int, int, str, bool, bool]]:
    """``(record index, line number, text, whether bytes were replaced, whether a newline ended it)`` of each
    non-blank line of a line format; a line over the size limit is counted as too large here, and takes its record
    index all the same."""
    index = 0
    for line_no, raw, ended in lines:
        if isinstance(raw, int):
            builder.too_large(_where(label, index, line_no), raw)
        else:
            line, repaired = _decode_line(raw, line_no)
            if not line.strip():
                continue
            yield index, line_no, line, repaired, ended
        index += 1


def _read_jsonl(lines: Iterable[_Line], name: str, label: str, builder: _PoolBuilder) -> None:
    for index, line_no, line, repaired, ended in _record_lines(lines, label, builder):
        try:
            record = _parse_json(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {json_type_name(record)}")
            if _LONE_SURROGATE_ESCAPE.search(line):
                record, fixed = _replace_surrogates(record)
                repaired = repaired or fixed
        except ValueError as exc:  # RecordError too
            problem = f"{label} line {line_no}: {_json_error(exc)}"
            if not ended:
                problem += (
                    "; it is the last line, with no newline: was the file cut short, or is it still being written?"
                )
            builder.malformed(problem)
            continue
        builder.add(record, name=name, label=label, index=index, line=line_no, repaired=repaired)


def _read_txt(lines: Iterable[_Line], name: str, label: str, builder: _PoolBuilder) -> None:
    for index, line_no, line, repaired, _ended in _record_lines(lines, label, builder):
        document = line.removesuffix("\r")
        builder.add(
            {"text": document},
            name=name,
            label=label,
            index=index,
            line=line_no,
            repaired=repaired,
            fmt="text",
        )


def _decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text (BOM dropped) and whether invalid bytes had to be replaced."""
    try:
        text, repaired = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, repaired = data.decode("utf-8", errors="replace"), True
    return text.removeprefix("\ufeff"), repaired


def _replace_surrogates(value: Any, depth: int = 1) -> tuple[Any, bool]:
    """Replace lone UTF-16 surrogates (from ``\\udXXX`` escapes) in strings and keys with U+FFFD; they cannot be
    encoded. Raises ``RecordError`` past ``MAX_JSON_DEPTH`` rather than recursing further."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return _SURROGATE.sub("\ufffd", value), True
        return value, False
    if not isinstance(value, list | dict):
        return value, False
    if depth > MAX_JSON_DEPTH:
        raise RecordError(f"nested deeper than {MAX_JSON_DEPTH} levels of arrays/objects")
    changed = False
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            new, fixed = _replace_surrogates(item, depth + 1)
            items.append(new)
            changed = changed or fixed
        return items, changed
    pairs: dict[Any, Any] = {}
    for key, item in value.items():
        new_key, key_fixed = _replace_surrogates(key, depth)
        new, fixed = _replace_surrogates(item, depth + 1)
        pairs[new_key] = new
        changed = changed or fixed or key_fixed
    return pairs, changed


def _parquet_rows(source: _Source) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    with _opened(source) as handle:
        try:
            return pq.read_table(handle).to_pylist()
        except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...) for bad files
            raise SourceError(f"{source.label}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc


def _dataset_rows(source: _Source) -> list[dict[str, Any]]:
    import datasets

    if source.kind == "hf_disk":
        try:
            loaded = datasets.load_from_disk(str(source.path))
        except Exception as exc:
            raise SourceError(f"{source.label}: not a readable saved dataset ({exc})") from exc
    else:
        try:
            loaded = datasets.load_dataset(source.label, split=source.split, **source.hub_kwargs)
        except Exception as exc:
            raise SourceError(
                f"{source.label}: not a local path, and datasets.load_dataset could not load split "
                f"{source.split!r} of it ({type(exc).__name__}: {exc})"
            ) from exc
    try:
        if isinstance(loaded, datasets.Dataset):
            return loaded.to_list()
        if isinstance(loaded, datasets.IterableDataset):
            return list(loaded)
    except Exception as exc:  # arrow files damaged after loading their metadata
        raise SourceError(f"{source.label}: rows cannot be read ({type(exc).__name__}: {exc})") from exc
    raise SourceError(f"{source.label}: holds several splits ({', '.join(loaded)}); name one")


def _suffix(name: str, suffixes: Sequence[str]) -> str | None:
    lowered = name.lower()
    return next((suffix for suffix in suffixes if lowered.endswith(suffix)), None)


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


STALE_TEMPORARY_SECONDS = 3600
"""A temporary file of ``write_atomically`` untouched this long was left by a killed writer; the next write of
the same file removes it. A live writer touches its file far more often; one hour leaves slow disks room."""


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write`` on a temporary file beside ``path`` and rename it into place; on failure remove it.

    A writer killed outright (SIGKILL, a lost machine) cannot remove its temporary file; the next successful write
    of ``path`` removes those older than ``STALE_TEMPORARY_SECONDS``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(path)
    return path


def _remove_stale_temporaries(path: Path) -> None:
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except FileNotFoundError:  # another writer removed it first
            continue
