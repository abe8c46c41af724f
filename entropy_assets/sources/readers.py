"""One reader per kind of source, each feeding records to a ``PoolBuilder``: ``.json`` (parsed whole, up to
``MAX_JSON_FILE_BYTES``), ``.jsonl`` and ``.txt`` (streamed line by line, gzipped or not), ``.parquet``, and
``datasets`` folders or names. A file that vanishes or changes while it is read is a ``SourceError``."""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from entropy_assets.records import RecordError, detect_format, json_type_name

from .builder import MAX_JSON_DEPTH, RECORD_ENCODER, SURROGATE, PoolBuilder, locate
from .discovery import Source
from .errors import SourceError

MAX_JSON_FILE_BYTES = 1024 * 1024 * 1024
"""A ``.json`` file (decompressed) larger than this is refused: one JSON document is parsed whole, which takes
several times its size in memory, whereas ``.jsonl`` is read line by line. 1 GiB admits the largest public
instruction sets stored as one array (ShareGPT's is about 0.7 GB)."""

_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD])[c-fC-F][0-9a-fA-F]{2})"
)
_UTF8_BOM = b"\xef\xbb\xbf"
_LINE_CHUNK = 1024 * 1024
_Line = tuple[int, bytes | int, bool]
"""A line of a line format: its number, its bytes (or its size, when over the limit), whether a newline ended it."""
_LONG_NUMBER = re.compile(r"\d{4000,}")


def read_source(source: Source, name: str, builder: PoolBuilder) -> None:
    """Add every record of ``source`` to ``builder``; ``name`` prefixes their ids."""
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


@contextmanager
def _opened(source: Source) -> Iterator[IO[bytes]]:
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


def _read_json(source: Source, name: str, builder: PoolBuilder) -> None:
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
    records = _json_records(parsed, label, builder)
    fix_surrogates = _LONE_SURROGATE_ESCAPE.search(text) is not None
    del text, parsed
    for index, record in enumerate(records):
        fixed = False
        try:
            if fix_surrogates:
                record, fixed = _replace_surrogates(record)
            if repaired and not fixed:
                fixed = "\ufffd" in RECORD_ENCODER.encode(record)
        except (RecordError, RecursionError, ValueError) as exc:
            builder.malformed(f"{locate(label, index, None)}: {exc}")
            continue
        builder.add(record, name=name, label=label, index=index, repaired=fixed)


def _json_records(parsed: Any, label: str, builder: PoolBuilder) -> list[Any]:
    """The records of a parsed .json file: an array, one record object, or an object holding one array."""
    if isinstance(parsed, list):
        return parsed
    if isinstance(parsed, dict):
        try:
            detect_format(parsed, builder.columns)
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
    lines: Iterable[_Line], label: str, builder: PoolBuilder
) -> Iterator[tuple[int, int, str, bool, bool]]:
    """``(record index, line number, text, whether bytes were replaced, whether a newline ended it)`` of each
    non-blank line of a line format; a line over the size limit is counted as too large here, and takes its record
    index all the same."""
    index = 0
    for line_no, raw, ended in lines:
        if isinstance(raw, int):
            builder.too_large(locate(label, index, line_no), raw)
        else:
            line, repaired = _decode_line(raw, line_no)
            if not line.strip():
                continue
            yield index, line_no, line, repaired, ended
        index += 1


def _read_jsonl(lines: Iterable[_Line], name: str, label: str, builder: PoolBuilder) -> None:
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


def _read_txt(lines: Iterable[_Line], name: str, label: str, builder: PoolBuilder) -> None:
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
        if SURROGATE.search(value):
            return SURROGATE.sub("\ufffd", value), True
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


def _parquet_rows(source: Source) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    with _opened(source) as handle:
        try:
            return pq.read_table(handle).to_pylist()
        except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...) for bad files
            raise SourceError(f"{source.label}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc


def _dataset_rows(source: Source) -> list[dict[str, Any]]:
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
