"""Reads of a stored pool (a parquet file, or a pool version's folder of parts) that never hold all of it: the
rows of given samples, one column, the held-out content hashes, and the pool's mix over each facet.

A selection among a few hundred thousand candidates of a pool of tens of millions needs the candidates' rows, not the
pool: these reads stream the pool's row groups through pyarrow and keep only what they were asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from entropy_assets.composition import FACETS, facet_frame
from entropy_assets.storage import Storage

BATCH_ROWS = 65_536
"""Rows per streamed batch: the pool's text for a batch, tens of MB, is what a streamed read holds at once."""


def pool_dataset(storage: Storage, file: str) -> ds.Dataset:
    """The stored pool ``file`` (relative to the storage) as a pyarrow dataset, its files in name order."""
    target = storage.path(file)
    local = target.protocol in ("", "file", "local")
    filesystem = None if local else target.fs
    if target.is_dir():
        files = sorted(str(p.path) for p in target.iterdir() if p.name.endswith(".parquet"))
        return ds.dataset(files, format="parquet", filesystem=filesystem)
    return ds.dataset(str(target.path), format="parquet", filesystem=filesystem)


def rows_with(
    storage: Storage, file: str, column: str, values: Collection[str], columns: list[str] | None = None
) -> pl.DataFrame:
    """The rows of the pool whose ``column`` holds one of ``values`` (``columns`` of them, or all), in pool order."""
    dataset = pool_dataset(storage, file)
    wanted = pa.array(list(values), type=pa.string())
    table = dataset.to_table(columns=columns, filter=pc.field(column).isin(wanted), batch_size=BATCH_ROWS)
    return pl.from_arrow(table)  # type: ignore[return-value]


def pool_column(storage: Storage, file: str, column: str) -> pl.Series:
    """One column of the whole pool."""
    table = pool_dataset(storage, file).to_table(columns=[column], batch_size=BATCH_ROWS)
    return pl.from_arrow(table.column(column)).alias(column)  # type: ignore[union-attr]


def smallest_distinct(storage: Storage, file: str, column: str, count: int) -> pl.Series:
    """The ``count`` smallest distinct values of ``column`` (the held-out content hashes: ``holdout_mask``'s set),
    read a batch at a time: memory holds about ``count`` values, not the column."""
    if count <= 0:
        return pl.Series(column, [], dtype=pl.String)
    kept = pl.Series(column, [], dtype=pl.String)
    for batch in _batches(storage, file, [column]):
        values = pl.concat([kept, pl.from_arrow(batch.column(0)).alias(column)])  # type: ignore[list-item]
        kept = values.unique().sort().head(count)
    return kept


def facet_counts(storage: Storage, file: str, excluded: Collection[str] = ()) -> dict[str, Counter[str]]:
    """How many samples of the pool have each value of each facet (``composition.FACETS``), leaving out samples
    whose content hash is in ``excluded`` (the held-out ones); a batch of rows at a time."""
    counts: dict[str, Counter[str]] = {facet: Counter() for facet in FACETS}
    skip = pl.Series(list(excluded), dtype=pl.String)
    for batch in _batches(storage, file, ["source", "format", "text", "n_bytes", "content_hash"]):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if len(skip):
            frame = frame.filter(~pl.col("content_hash").is_in(skip.implode()))
        facets = facet_frame(frame)
        for facet in FACETS:
            counts[facet].update(dict(facets[facet].value_counts(name="n").iter_rows()))
    return counts


def _batches(storage: Storage, file: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from pool_dataset(storage, file).to_batches(columns=columns, batch_size=BATCH_ROWS)
