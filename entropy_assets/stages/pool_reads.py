"""Reads of a stored pool (a parquet file, or a pool version's folder of parts) that never hold all of it: the
rows of given samples, some columns, the held-out content hashes (the pool's mix: ``pool_mix``).

A selection among a few hundred thousand candidates of a pool of tens of millions needs the candidates' rows, not the
pool: these reads stream the pool's row groups through pyarrow and keep only what they were asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

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
    wanted = pa.array(list(values), type=pa.string())
    scanner = _scanner(storage, file, columns, pc.field(column).isin(wanted))
    frames = [pl.from_arrow(batch) for batch in scanner.to_batches() if batch.num_rows]  # arrow's copy a batch long
    return pl.concat(frames, rechunk=False) if frames else pl.from_arrow(scanner.projected_schema.empty_table())  # type: ignore


def pool_columns(storage: Storage, file: str, columns: list[str]) -> pl.DataFrame:
    """Some columns of the whole pool, from a local or remote store."""
    return pl.from_arrow(_scanner(storage, file, columns).to_table())  # type: ignore[return-value]


def pool_column(storage: Storage, file: str, column: str) -> pl.Series:
    """One column of the whole pool."""
    table = _scanner(storage, file, [column]).to_table()
    return pl.from_arrow(table.column(column)).alias(column)  # type: ignore[union-attr]


def smallest_distinct(storage: Storage, file: str, column: str, count: int) -> pl.Series:
    """The ``count`` smallest distinct values of ``column`` (the held-out content hashes: ``holdout_mask``'s set),
    read a batch at a time: memory holds about ``count`` values, not the column."""
    if count <= 0:
        return pl.Series(column, [], dtype=pl.String)
    kept = pl.Series(column, [], dtype=pl.String)
    for batch in pool_batches(storage, file, [column]):
        values = pl.concat([kept, pl.from_arrow(batch.column(0)).alias(column)])  # type: ignore[list-item]
        kept = values.unique().sort().head(count)
    return kept


def pool_batches(storage: Storage, file: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Some columns of the pool, a batch at a time, in pool order."""
    yield from _scanner(storage, file, columns).to_batches()


def _scanner(storage: Storage, file: str, columns: list[str] | None, where: pc.Expression | None = None) -> ds.Scanner:
    """A scan of the pool that decodes one part's batch at a time: pyarrow's default reads ahead 16 batches of 4
    files, which for a pool's text can be gigabytes in flight."""
    return ds.Scanner.from_dataset(
        pool_dataset(storage, file),
        columns=columns,
        filter=where,
        batch_size=BATCH_ROWS,
        batch_readahead=1,
        fragment_readahead=1,
    )
