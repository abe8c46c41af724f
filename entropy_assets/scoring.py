"""Per-sample compression scores, and the content-hash shards that let a large pool be scored piece by piece.

A shard is a range of content hashes: a sample's shard depends on its content alone, so it is stable as the pool
grows, every copy of a content lands in the same shard, and a data change touches only the shards of the samples
that changed. A shard's fingerprint (``entropy_assets.versions.shard_fingerprints``) hashes its content hashes: an
unchanged fingerprint means its scores need not be computed again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard as zstd

from .compression import Compressor, ZstdCompressor, default_threads
from .quality import GATE_SCHEMA, QUALITY_SIGNALS_VERSION, SIGNALS_SCHEMA, QualitySettings, apply_gate, text_signals
from .sources import POOL_SCHEMA, SourceError

SCORES_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "content_hash": pl.String(),
    "n_bytes": pl.Int64(),
    "compressed_bytes": pl.Int64(),
    "compressor": pl.String(),
    "ratio": pl.Float64(),
}
"""Scores: one row per pool sample; ``compressor`` holds the settings that made the sizes."""

GATE_COMPRESSOR: Compressor = ZstdCompressor(level=3)
"""What the gate's ratio signal is measured with (its table of natural text's ratios was): with scores of another
compressor, the gate compresses the samples once more with this one."""

GATED_SCORES_SCHEMA: dict[str, pl.DataType] = {
    **SCORES_SCHEMA,
    "signals": pl.String(),
    **SIGNALS_SCHEMA,
    **GATE_SCHEMA,
}
"""Scores with the quality gate's signals (``signals`` names their code version) and its verdict per sample:
``excluded`` holds the reason a sample is kept out of every selection (null when it is offered)."""

SCORES_DESCRIPTIONS: dict[str, str] = {
    "id": "the sample's id in the pool",
    "content_hash": "hash of the sample's canonical text: sizes are reused by it",
    "n_bytes": "bytes of canonical text",
    "compressed_bytes": "bytes compressed alone",
    "compressor": "the compressor's settings that measured compressed_bytes",
    "ratio": "n_bytes / compressed_bytes",
    "signals": "the code version of the quality signals",
    "script": "the dominant Unicode script of the text",
    "encoded_chars": "characters in runs that look encoded (base64, hex)",
    "other_share": "share of characters that are control, replacement or stray symbols",
    "relative_ratio": "the ratio over the median of natural text of its length and script",
    "excluded": "why the quality gate keeps it out of every selection; null when offered",
    "excluded_value": "the value of the signal that excluded it",
}
"""What each column of the scores holds, for the column schema their metadata shows."""

SCORED_COLUMNS: tuple[str, ...] = ("id", "content_hash", "n_bytes", "text")
"""The pool columns that scoring reads."""
_SCORED_TYPES: dict[str, pl.DataType] = {name: POOL_SCHEMA[name] for name in SCORED_COLUMNS}
SHARD_PIECE_SCHEMA: pa.Schema = pl.DataFrame(schema={**_SCORED_TYPES, "shard": pl.Int32}).to_arrow().schema
"""The columns of a shard-ordered file and of a shard piece: those scoring reads, and the sample's ``shard``."""


def shard_keys(shards: int) -> list[str]:
    """The names of ``shards`` shards, zero-padded so that they sort: ``00``, ``01``, ..."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    width = len(str(shards - 1))
    return [f"{index:0{width}d}" for index in range(shards)]


def shard_expr(shards: int) -> pl.Expr:
    """The shard of each sample as a polars expression over ``content_hash`` (its first 32 bits, modulo)."""
    return pl.col("content_hash").str.slice(0, 8).str.to_integer(base=16) % shards


def shard_of(content_hashes: pl.Series, shards: int) -> np.ndarray:
    """The shard of each content hash, as int64 positions into ``shard_keys(shards)``."""
    frame = pl.DataFrame({"content_hash": content_hashes})
    return frame.select(shard_expr(shards)).to_series().to_numpy().astype(np.int64)


SHARD_ROW_GROUP = 8192
"""Rows per row group of a shard-ordered file: a shard's read decodes at most two row groups of other shards."""


def write_shard_ordered(pool: pl.DataFrame, shards: int, path: str | os.PathLike[str]) -> None:
    """Write the columns scoring needs, with a ``shard`` column, rows grouped by shard (pool order within each), in
    small row groups: ``read_shard`` then decodes only its own shard's row groups, found by their statistics."""
    with tempfile.TemporaryDirectory(prefix="shard-ordered-") as scratch:
        writer = ShardOrderedWriter(shards, Path(scratch))
        writer.add(pool)
        writer.finish(path)


def shard_pieces(rows: pl.DataFrame, shards: int) -> Iterator[tuple[str, pa.Table]]:
    """``rows`` (at least the columns scoring reads) split by shard: for every key of ``shard_keys(shards)``, in
    order, that shard's rows in their order, as ``SHARD_PIECE_SCHEMA`` (empty for a shard with none). Memory holds
    ``rows`` and one shard's copy of them."""
    scored = rows.select(SCORED_COLUMNS).with_columns(shard=shard_expr(shards).cast(pl.Int32))
    of = scored["shard"].to_numpy()
    order = np.argsort(of, kind="stable")
    ends = np.cumsum(np.bincount(of, minlength=shards))
    for index, key in enumerate(shard_keys(shards)):
        start = ends[index - 1] if index else 0
        yield key, scored[order[start : ends[index]]].to_arrow().cast(SHARD_PIECE_SCHEMA)


def write_shard_piece(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write one shard's rows (from ``shard_pieces``) as ``read_shard`` reads them: zstd, in row groups of
    ``SHARD_ROW_GROUP`` rows."""
    pq.write_table(table, path, compression="zstd", row_group_size=SHARD_ROW_GROUP)


class ShardOrderedWriter:
    """``write_shard_ordered`` for a pool seen a piece at a time, in order: each piece's rows go to a file per shard
    under ``scratch``, and ``finish`` joins those files in shard order. Memory holds one piece and one row group."""

    def __init__(self, shards: int, scratch: Path) -> None:
        self._shards = shards
        self._scratch = scratch
        self._writers: dict[int, pq.ParquetWriter] = {}

    def add(self, rows: pl.DataFrame) -> None:
        """Add the next rows of the pool (at least the columns scoring reads)."""
        for shard, (_, table) in enumerate(shard_pieces(rows, self._shards)):
            if table.num_rows:
                if shard not in self._writers:
                    self._writers[shard] = pq.ParquetWriter(self._file(shard), SHARD_PIECE_SCHEMA, compression="zstd")
                self._writers[shard].write_table(table)

    def finish(self, path: str | os.PathLike[str]) -> None:
        """Write the shard-ordered file at ``path``: every shard's rows, in shard order, in row groups of at most
        ``SHARD_ROW_GROUP`` rows that never straddle two shards."""
        for writer in self._writers.values():
            writer.close()
        with pq.ParquetWriter(path, SHARD_PIECE_SCHEMA, compression="zstd") as out:
            for shard in sorted(self._writers):
                for batch in pq.ParquetFile(self._file(shard)).iter_batches(batch_size=SHARD_ROW_GROUP):
                    out.write_batch(batch, row_group_size=SHARD_ROW_GROUP)
                self._file(shard).unlink()
            if not self._writers:  # an empty pool: a file with the columns and no rows
                out.write_table(SHARD_PIECE_SCHEMA.empty_table())
        self._writers.clear()

    def _file(self, shard: int) -> Path:
        return self._scratch / f"shard-{shard}.parquet"


def read_shard(pool_file: str | os.PathLike[str], shard: int, shards: int) -> pl.DataFrame:
    """The samples of one shard, with the columns scoring needs, from a pool parquet file or folder, or (much faster)
    a file of ``write_shard_ordered`` or a folder of the shard's pieces (``write_shard_piece``; a folder given with a
    trailing slash, as polars reads one). Only the shard's rows are kept in memory: the files are scanned, filtered
    and collected by polars' streaming engine. A missing, truncated or foreign file is a ``SourceError`` naming it
    and the shard."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1}, got {shard}")
    where = f"{os.fspath(pool_file)} (shard {shard} of {shards})"
    try:
        scan = pl.scan_parquet(pool_file)
        names = scan.collect_schema().names()
        missing = [name for name in SCORED_COLUMNS if name not in names]
        if missing:
            raise SourceError(f"{where}: not a pool file; columns {missing} are missing")
        scan = scan.filter((pl.col("shard") if "shard" in names else shard_expr(shards)) == shard)
        frame = scan.select(SCORED_COLUMNS).collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from exc
    except pl.exceptions.PanicException as exc:
        # Seen with polars 1.44: the shard filter, run inside the parquet decoder, panics instead of raising its
        # ComputeError on a content hash that is not hex (a damaged pool file). The panic is confined to the query.
        raise SourceError(f"{where}: cannot be read (polars panicked: {str(exc)[:300]})") from exc
    wrong = {name: dtype for name, dtype in frame.schema.items() if dtype != _SCORED_TYPES[name]}
    if wrong:
        raise SourceError(f"{where}: columns of the wrong type {wrong}; expected {_SCORED_TYPES}")
    return frame


def settings_key(compressor: Compressor) -> str:
    """The compressor's settings as the string stored in the scores' ``compressor`` column."""
    return json.dumps(compressor.describe(), sort_keys=True)


def reusable_scores(previous: pl.DataFrame | None, compressor: Compressor) -> pl.DataFrame | None:
    """``previous`` if its sizes were made with ``compressor``'s settings, else None."""
    if previous is None or previous.is_empty() or previous["compressor"][0] != settings_key(compressor):
        return None
    return previous


def score_samples(
    frame: pl.DataFrame, compressor: Compressor, previous: pl.DataFrame | None = None, threads: int | None = None
) -> tuple[pl.DataFrame, int]:
    """Scores for every sample of ``frame`` (``id``, ``content_hash``, ``n_bytes``, ``text``), and how many were
    compressed: sizes in ``previous`` (scores from the same compressor settings) are reused by content hash."""
    scores = frame.select("id", "content_hash", "n_bytes")
    previous = reusable_scores(previous, compressor)
    if previous is None:
        scores = scores.with_columns(compressed_bytes=pl.lit(None, dtype=pl.Int64))
    else:
        stored = previous.select("content_hash", pl.col("compressed_bytes").cast(pl.Int64)).unique("content_hash")
        scores = scores.join(stored, on="content_hash", how="left", maintain_order="left")
    missing = scores["compressed_bytes"].is_null()
    count = int(missing.sum())
    sizes = scores["compressed_bytes"].fill_null(0).to_numpy().copy()
    if count:
        texts = frame["text"] if count == frame.height else frame["text"].filter(missing)
        packed = isinstance(compressor, ZstdCompressor)
        sizes[missing.to_numpy()] = compressor.compressed_sizes(_utf8(texts, packed), threads or default_threads())
    scores = scores.with_columns(
        compressed_bytes=pl.Series(sizes, dtype=pl.Int64),
        compressor=pl.lit(settings_key(compressor)),
    )
    scores = scores.with_columns(ratio=pl.col("n_bytes") / pl.col("compressed_bytes"))
    return scores.select(list(SCORES_SCHEMA)).cast(dict(SCORES_SCHEMA)), count


def gate_scores(
    scores: pl.DataFrame, frame: pl.DataFrame, quality: QualitySettings, previous: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, int]:
    """``scores`` of ``frame``'s samples (row for row) with the quality gate's signals and verdict
    (``GATED_SCORES_SCHEMA``), and how many samples' texts were measured: signals in ``previous`` (scores with
    signals of the same code version) are reused by content hash."""
    if scores["compressor"].head(1).to_list() != [settings_key(GATE_COMPRESSOR)]:  # the gate judges zstd 3 ratios
        reference, _ = score_samples(frame, GATE_COMPRESSOR)
        scores = scores.with_columns(gate_ratio=reference["ratio"])
    signals = scores.select("content_hash")
    stored = _reusable_signals(previous)
    if stored is None:
        signals = signals.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in SIGNALS_SCHEMA.items())
    else:
        signals = signals.join(stored, on="content_hash", how="left", maintain_order="left")
    missing = signals["encoded_chars"].is_null()
    count = int(missing.sum())
    if count:
        measured = text_signals(frame["text"] if count == frame.height else frame["text"].filter(missing))
        if count == frame.height:
            signals = signals.select("content_hash").hstack(measured)
        else:
            rows = np.flatnonzero(missing.to_numpy())
            signals = signals.with_columns(
                signals[name].scatter(rows, measured[name]).alias(name) for name in SIGNALS_SCHEMA
            )
    gated = scores.hstack(signals.drop("content_hash")).with_columns(signals=pl.lit(QUALITY_SIGNALS_VERSION))
    gated = apply_gate(gated, quality, ratio="gate_ratio" if "gate_ratio" in gated.columns else "ratio")
    return gated.select(list(GATED_SCORES_SCHEMA)).cast(dict(GATED_SCORES_SCHEMA)), count


def gated_samples(frame: pl.DataFrame, quality: QualitySettings) -> pl.DataFrame:
    """The quality gate's signals and verdict for every sample of ``frame`` (``id``, ``content_hash``, ``n_bytes``,
    ``text``), row for row: what the command line judges a file's records by."""
    sizes, _ = score_samples(frame.select(SCORED_COLUMNS), GATE_COMPRESSOR)
    gated, _ = gate_scores(sizes, frame, quality)
    return gated


def _reusable_signals(previous: pl.DataFrame | None) -> pl.DataFrame | None:
    """The signals of ``previous`` by content hash, if it holds signals of this code version."""
    if previous is None or previous.is_empty() or "signals" not in previous.columns:
        return None
    if previous["signals"][0] != QUALITY_SIGNALS_VERSION:
        return None
    return previous.select("content_hash", *SIGNALS_SCHEMA).unique("content_hash")


def _utf8(texts: pl.Series, packed: bool) -> list[bytes] | zstd.BufferWithSegments:
    """The UTF-8 bytes of ``texts``: ``packed``, the Arrow array's data buffer itself with each text's (offset,
    length) as a segment, which zstd's batch call reads in place; else a list of bytes, converted by polars."""
    if texts.null_count():
        raise ValueError(f"column {texts.name!r} has {texts.null_count()} null value(s); every sample needs a text")
    if not packed:
        return texts.cast(pl.Binary).to_list()
    array = texts.to_arrow()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    segments = np.empty((len(array), 2), dtype=np.uint64)
    segments[:, 0] = ends[:-1]
    segments[:, 1] = np.diff(ends)
    return zstd.BufferWithSegments(data if data is not None else b"", segments.tobytes())
