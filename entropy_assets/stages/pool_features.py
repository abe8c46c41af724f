"""Features of a pool's samples that are made from their text and that some selections choose by: each sample's
token count (``longest_tokens``), its dominant script (a selection stratified by script) and its near-duplicate band
keys (``near_dedup``).

A feature is computed once per stored part of the pool (one source's rows, ``stages.pool``), a batch of texts at a
time, and stored as ``<pool folder>/part_features/<feature>/<part name>``, row for row with the part: a pool version
that holds an unchanged source reuses its features, and a selection reads a feature's columns, not the pool's text.
Parts whose features are missing are computed by one process per core when they are large together, as the pool
step parses them.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from upath import UPath

from entropy_assets.composition import scripts
from entropy_assets.compression import default_threads
from entropy_assets.selection.baselines import token_counts
from entropy_assets.selection.near_duplicates import BAND_COLUMNS, band_keys
from entropy_assets.storage import Storage

from .pool_reads import BATCH_ROWS

FEATURES_FOLDER = "part_features"
"""The folder beside a pool's versions that holds its parts' features."""
PARALLEL_BYTES = 64 << 20
"""Parts of at least this many bytes together get their features computed by one process per core."""


@dataclass(frozen=True)
class PartFeature:
    """A feature: its name, the columns it adds, and how a batch of texts becomes them."""

    name: str
    columns: tuple[str, ...]
    compute: Callable[[pl.Series], pl.DataFrame]


def _tokens(texts: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({"tokens": token_counts(texts)})


def _script(texts: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({"script": scripts(texts)})


FEATURES: dict[str, PartFeature] = {
    feature.name: feature
    for feature in (
        PartFeature("tokens", ("tokens",), _tokens),
        PartFeature("script", ("script",), _script),
        PartFeature("near_duplicates", BAND_COLUMNS, band_keys),
    )
}
"""Every feature, by name."""


def feature_of(column: str) -> str:
    """The feature that adds ``column``."""
    return next(name for name, feature in FEATURES.items() if column in feature.columns)


@dataclass(frozen=True)
class PoolFeatures:
    """A feature's stored files for every part of a pool, in the pool's order: its columns read row for row with the
    pool, a column at a time."""

    storage: Storage
    files: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        """One column of the feature for every sample of the pool."""
        parts = [self.storage.read_parquet(file, columns=[name])[name] for file in self.files]
        return pl.concat(parts).to_numpy() if parts else np.array([])

    def gather(self, name: str, positions: np.ndarray) -> pl.Series:
        """One column of the feature at the pool's rows ``positions`` (ascending), read a part at a time."""
        found, start, dtype = [], 0, pl.String
        for file in self.files:
            column = self.storage.read_parquet(file, columns=[name])[name]
            dtype = column.dtype
            low, high = np.searchsorted(positions, [start, start + len(column)])
            if high > low:
                found.append(column.gather(positions[low:high] - start))
            start += len(column)
        return pl.concat(found) if found else pl.Series(name, [], dtype=dtype)

    def frame(self, columns: Sequence[str]) -> pl.DataFrame:
        """Some columns of the feature for every sample of the pool."""
        return pl.concat([self.storage.read_parquet(file, columns=list(columns)) for file in self.files])


def part_feature_file(part: tuple[str, ...], feature: str) -> tuple[str, ...]:
    """Where a stored part's ``feature`` goes: ``part`` is ``<pool folder>/parts/<name>``, the feature
    ``<pool folder>/part_features/<feature>/<name>``, where ``pool_features`` finds it for every version holding the
    part."""
    return (*part[:-2], FEATURES_FOLDER, feature, part[-1])


def pool_features(storage: Storage, pool_file: str, feature: str) -> PoolFeatures:
    """``feature`` for every sample of the pool stored at ``pool_file``, computing it for the parts that lack it. A
    part is named by its stored part's name (a pool version's folder holds ``<position>.<part name>``): the same
    source's part has the same features in every version that holds it."""
    parts = _parts(storage, pool_file)
    folder = (*PurePosixPath(pool_file).parent.parts, FEATURES_FOLDER, feature)
    in_folder = storage.path(pool_file).is_dir()
    targets = [(*folder, part.name.split(".", 1)[1] if in_folder else part.name) for part in parts]
    missing = [(part, target) for part, target in zip(parts, targets, strict=True) if not storage.exists(*target)]
    processes = 1 if multiprocessing.current_process().daemon else min(default_threads(), len(missing))
    jobs = ([storage] * len(missing), [feature] * len(missing), *zip(*missing, strict=True)) if missing else ()
    if processes > 1 and sum(_size(part) for part, _ in missing) >= PARALLEL_BYTES:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as workers:
            list(workers.map(_compute, *jobs))
    else:
        for part, target in missing:
            _compute(storage, feature, part, target)
    return PoolFeatures(storage, tuple("/".join(target) for target in targets))


def _parts(storage: Storage, pool_file: str) -> list[UPath]:
    """The pool's parquet files in the order ``Storage.read_parquet`` reads them."""
    target = storage.path(pool_file)
    if not target.is_dir():
        return [target]
    return sorted((p for p in target.iterdir() if p.name.endswith(".parquet")), key=lambda p: p.name)


def _size(part: UPath) -> int:
    return int(part.stat().st_size)


def _compute(storage: Storage, feature: str, part: UPath, target: tuple[str, ...]) -> None:
    """Compute ``feature`` for one part, a batch of texts at a time, and store it at ``target``."""
    compute = FEATURES[feature].compute
    with part.open("rb") as handle:
        batches = pq.ParquetFile(handle).iter_batches(batch_size=BATCH_ROWS, columns=["text"])
        frames = [compute(pl.Series("text", batch.column(0), dtype=pl.String)) for batch in batches]
    if not frames:
        frames = [compute(pl.Series("text", [], dtype=pl.String))]
    storage.write_once(lambda local: pl.concat(frames).write_parquet(local), *target)
