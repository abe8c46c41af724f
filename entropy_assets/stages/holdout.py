"""The evaluation samples, and what is held out of selection so that no method trains on them.

Every run of a pipeline is evaluated on the same set: the user's evaluation files (``eval_paths``: not part of the
pool; a pool sample with the same content as one of them is held out of selection too), or, without them, the
pool's samples of smallest content hash (which move when the data does: Z then compares within one data version,
and each run records its evaluation set's version).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from entropy_assets.sources import SourceColumns, load_pool
from entropy_assets.storage import Storage
from entropy_assets.versions import subset_content_version

from .pool_reads import rows_with, smallest_distinct
from .settings import TrainingSettings


def holdout_mask(
    frame: pl.DataFrame, count: int, eval_paths: Sequence[str] = (), columns: SourceColumns | None = None
) -> pl.Series:
    """True for the samples held out of selection: those whose content hash is among the ``count`` smallest
    distinct ones, and those whose content is in the evaluation files ``eval_paths`` (read with ``columns``).

    Every copy of a held-out content is held out, so that no duplicate of an evaluation sample is trained on.
    """
    if frame.is_empty() or (count <= 0 and not eval_paths):
        return pl.Series("holdout", [False] * frame.height, dtype=pl.Boolean)  # Boolean even when empty
    evaluation = eval_content_hashes(eval_paths, columns)
    hashes = pl.concat([frame["content_hash"].unique().sort().head(max(count, 0)), evaluation])
    return frame["content_hash"].is_in(hashes.implode()).alias("holdout")


def held_out_hashes(
    storage: Storage,
    pool_file: str,
    count: int,
    eval_paths: Sequence[str] = (),
    columns: SourceColumns | None = None,
) -> pl.Series:
    """The content hashes ``holdout_mask`` holds out of the stored pool ``pool_file``, read a batch at a time."""
    smallest = smallest_distinct(storage, pool_file, "content_hash", count)
    return pl.concat([smallest, eval_content_hashes(eval_paths, columns)]).unique().sort()


def eval_content_hashes(eval_paths: Sequence[str], columns: SourceColumns | None = None) -> pl.Series:
    """The content hashes of the evaluation files' records, read with the pool's ``columns`` (none without
    files)."""
    if not eval_paths:
        return pl.Series("content_hash", [], dtype=pl.String)
    return load_pool(list(eval_paths), columns=columns).frame["content_hash"].unique()


def evaluation_frame(
    storage: Storage, pool_file: str, training: TrainingSettings, columns: SourceColumns | None = None
) -> pl.DataFrame:
    """What every run of a pipeline is evaluated on: the user's evaluation set (read with the pool's ``columns``),
    or the held-out samples of the stored pool ``pool_file`` (every copy of the ``holdout`` smallest content hashes,
    in pool order), read a batch at a time once per pool version and stored beside it
    (``<pool version>.evaluation<holdout>.parquet``)."""
    if training.eval_paths:
        return load_pool(list(training.eval_paths), columns=columns).frame
    stored = f"{pool_file.rstrip('/')}.evaluation{training.holdout}.parquet"  # once per pool version
    if storage.exists(stored):
        return storage.read_parquet(stored)
    hashes = smallest_distinct(storage, pool_file, "content_hash", training.holdout)
    frame = rows_with(storage, pool_file, "content_hash", hashes.to_list())
    storage.write_version(frame, stored)
    return frame


def evaluation_version(evaluation: pl.DataFrame) -> str:
    """The evaluation set's version: its samples' content, in order."""
    return subset_content_version(evaluation["content_hash"].to_list())
