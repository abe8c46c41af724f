"""The evaluation samples: held out of selection, so that every method is evaluated on data none trained on."""

from __future__ import annotations

import polars as pl

from entropy_assets.sources import load_pool

from .settings import TrainingSettings


def holdout_mask(frame: pl.DataFrame, count: int) -> pl.Series:
    """True for the evaluation samples: those whose content hash is among the ``count`` smallest distinct ones.

    Every copy of a held-out content is held out, so that no duplicate of an evaluation sample is trained on.
    """
    if count <= 0 or frame.is_empty():
        return pl.Series("holdout", [False] * frame.height)
    hashes = frame["content_hash"].unique().sort().head(count)
    return frame["content_hash"].is_in(hashes.implode()).alias("holdout")


def evaluation_frame(pool: pl.DataFrame, training: TrainingSettings) -> pl.DataFrame:
    """What every run of a pipeline is evaluated on: the user's evaluation set, or the pool's held-out samples."""
    if training.eval_paths:
        return load_pool(list(training.eval_paths)).frame
    return pool.filter(holdout_mask(pool, training.holdout))
