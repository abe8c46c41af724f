"""Pool to compression scores: per-sample compressed sizes, for the whole pool or one content-hash shard, and the
pool's scores gathered back from its shards for selection.

Unchanged content is never compressed again: sizes are reused by content hash from the previous scores, and a
shard whose samples did not change (the same fingerprint) reuses its stored scores whole.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import polars as pl
from upath import UPath

from entropy_assets.compression import Compressor, make_compressor
from entropy_assets.quality import DEFAULT, QualitySettings, exclusion_counts, top_sources
from entropy_assets.scoring import (
    GATED_SCORES_SCHEMA,
    SCORES_DESCRIPTIONS,
    gate_scores,
    read_shard,
    score_samples,
    shard_keys,
    shard_of,
)
from entropy_assets.storage import Storage
from entropy_assets.versions import (
    compressor_settings_hash,
    gathered_scores_version,
    quality_settings_hash,
    scores_version,
    shard_fingerprints,
)

from .metadata import column_schema
from .pool_reads import pool_columns
from .pool_result import PoolResult
from .scores_result import ScoresResult
from .workspace import Workspace


@dataclass(frozen=True)
class ScoringSettings:
    """How samples are scored, into how many content-hash shards the pool is split, and the quality gate that
    keeps noisy samples out of every selection."""

    compressor: str = "zstd"
    level: int | None = None
    shards: int = 1
    quality: QualitySettings = DEFAULT

    @cached_property
    def settings_hash(self) -> str:
        """What names the compressor's and the gate's settings in the scores' versions."""
        return f"{compressor_settings_hash(self.make_compressor())}.{quality_settings_hash(self.quality)}"

    def make_compressor(self) -> Compressor:
        return make_compressor(self.compressor, self.level)

    @property
    def sharded(self) -> bool:
        return self.shards > 1


@dataclass(frozen=True)
class PoolScores:
    """The scores of every sample of a pool, row for row, and their version."""

    frame: pl.DataFrame
    version: str


def score_pool(
    workspace: Workspace, pool: PoolResult, scoring: ScoringSettings, previous: ScoresResult | None
) -> ScoresResult:
    """Scores of every sample of ``pool``; sizes in ``previous`` (the last scores) are reused by content hash."""
    started = time.perf_counter()
    storage = workspace.storage
    compressor = scoring.make_compressor()
    frame = storage.read_parquet(pool.file)
    scores, rescored = _score(frame, scoring, _stored(storage, previous))
    version = scores_version(pool.version, scoring.settings_hash)
    path = storage.write_version(scores, *workspace.folder("compression_scores"), f"{version}.parquet")
    return _result(storage, path, version, pool, scores, rescored, started, compressor)


def score_shard(
    workspace: Workspace, pool: PoolResult, scoring: ScoringSettings, shard: str, previous: ScoresResult | None
) -> ScoresResult:
    """Scores of one shard of ``pool``, read alone from the pool's shard-ordered copy; a shard whose samples were
    scored before with these settings is read back, not scored."""
    started = time.perf_counter()
    storage = workspace.storage
    compressor = scoring.make_compressor()
    fingerprint = pool_fingerprints(storage, pool, scoring.shards)[shard]
    version = scores_version(fingerprint, scoring.settings_hash)
    folder = workspace.folder("compression_scores", shard)
    if storage.exists(*folder, f"{version}.parquet"):  # the same samples, scored with the same settings
        scores, rescored = storage.read_parquet(*folder, f"{version}.parquet"), 0
    else:
        frame = shard_rows(storage, pool, shard, scoring.shards)
        scores, rescored = _score(frame, scoring, _stored(storage, previous))
    path = storage.write_version(scores, *folder, f"{version}.parquet")
    result = _result(storage, path, version, pool, scores, rescored, started, compressor)
    return replace(result, shard=shard, shard_fingerprint=fingerprint, shards=scoring.shards)


def shard_rows(storage: Storage, pool: PoolResult, shard: str, shards: int) -> pl.DataFrame:
    """The samples of one of ``shards`` shards, with the columns scoring reads: its folder of pieces in the pool's
    shard-ordered copy (a file per shard, or one file for every shard, in pools made before), else filtered from the
    pool itself (a pool made while the pipeline had another number of shards)."""
    index = shard_keys(shards).index(shard)
    copy = pool.shard_file
    if copy is None or not copy.removesuffix(".parquet").endswith(f".shards{shards}"):
        return read_shard(_polars_source(storage.path(pool.file)), index, shards)
    source = storage.path(copy)
    if source.is_dir():
        pieces = source / shard
        source = pieces if pieces.is_dir() else source / f"{shard}.parquet"
    return read_shard(_polars_source(source), index, shards)


def _polars_source(path: UPath) -> str:
    """``path`` as polars reads it: a folder (a pool) with a trailing slash, without which polars takes an S3
    prefix for a file."""
    text = str(path)
    return text.rstrip("/") + "/" if path.is_dir() else text


def pool_fingerprints(storage: Storage, pool: PoolResult, shards: int) -> dict[str, str]:
    """The fingerprint of each shard of a pool, as the pool recorded them (or computed from its file, for a pool
    made while the pipeline had another number of shards)."""
    recorded = pool.shard_fingerprints
    if recorded is not None and sorted(recorded) == shard_keys(shards):
        return {shard: str(fingerprint) for shard, fingerprint in recorded.items()}
    return shard_fingerprints(pool_columns(storage, pool.file, ["id", "content_hash"]), shards)


def expected_versions(storage: Storage, pool: PoolResult, scoring: ScoringSettings) -> dict[str, str]:
    """The version every shard's scores must have to be current for ``pool``."""
    return shard_versions(pool_fingerprints(storage, pool, scoring.shards), scoring)


def shard_versions(fingerprints: Mapping[str, str], scoring: ScoringSettings) -> dict[str, str]:
    """The version of each shard's scores, from the shards' fingerprints."""
    return {shard: scores_version(fingerprint, scoring.settings_hash) for shard, fingerprint in fingerprints.items()}


def stale_shards(expected: Mapping[str, str], latest: Mapping[str, ScoresResult | None]) -> list[str]:
    """The shards whose latest scores are missing or not of the ``expected`` version (older data, other settings)."""
    return [
        shard for shard, version in expected.items() if (found := latest.get(shard)) is None or found.version != version
    ]


def gather_scores(
    workspace: Workspace,
    pool: PoolResult,
    frame: pl.DataFrame,
    scoring: ScoringSettings,
    latest: ScoresResult | Mapping[str, ScoresResult | None] | None,
    columns: Sequence[str] | None = None,
) -> PoolScores:
    """The scores of every sample of ``frame`` (the pool ``pool`` names), row for row: the latest scores, or every
    shard's latest scores; only ``columns`` of them where given (``SELECTION_COLUMNS``: what a selection reads, a
    few bytes a sample where every column is hundreds), each shard's file read alone. Scores of an older pool, or a
    shard not yet scored for this one, are an error that says what to materialize."""
    storage = workspace.storage
    what = f"{workspace.name}/compression_scores"
    if not scoring.sharded:
        if not isinstance(latest, ScoresResult) or latest.pool_version != pool.version:
            made = latest.pool_version if isinstance(latest, ScoresResult) else None
            raise ValueError(
                f"{what} was made from pool version {made}, not the latest {pool.version}; materialize it first"
            )
        stored = storage.read_parquet(latest.file)
        return PoolScores(_narrow(stored, columns) if columns is not None else _gated(stored), latest.version)
    shards = latest if isinstance(latest, Mapping) else {}
    expected = expected_versions(storage, pool, scoring)
    stale = stale_shards(expected, shards)
    if stale:
        raise ValueError(
            f"{what} shard(s) {', '.join(stale)} are not scored for pool version {pool.version} yet; materialize "
            "those partitions first"
        )
    current = {shard: shards[shard] for shard in expected}
    files = [result.file for _, result in sorted(current.items()) if result is not None]  # in shard order
    version = gathered_scores_version(expected)
    if columns is not None:
        aligned = _aligned_by_key(storage, files, frame, columns, scoring.shards)
        if aligned is not None:
            return PoolScores(aligned, version)
    scores = pl.concat([_narrow(storage.read_parquet(file), columns) for file in files])
    aligned = frame.select("id").join(scores.unique("id", keep="first"), on="id", how="left", maintain_order="left")
    return PoolScores(aligned if columns is not None else _gated(aligned), version)


def _aligned_by_key(
    storage: Storage, files: list[str], pool: pl.DataFrame, columns: Sequence[str], shards: int
) -> pl.DataFrame | None:
    """The shards' scores (``files``; ``columns`` of them, ``id`` left out) row for row with the ``pool`` frame
    (``id`` and ``content_hash``), without joining on the ids: at ten million samples the ids and their join held
    several GB. Each shard holds its samples in pool order, so the shards' scores one after another are the pool's
    rows stably sorted by shard; a 64-bit hash of the ids checks that they are, and else matches them. None where
    two of the pool's ids share a hash, or an id is repeated (then the caller matches on the ids themselves)."""
    keys = pool["id"].hash(seed=0)
    parts = []
    for file in files:
        shard = _narrow(storage.read_parquet(file), columns)
        narrowed = [pl.col("excluded").cast(pl.Categorical)] if "excluded" in columns else []
        parts.append(shard.with_columns(pl.col("id").hash(seed=0), *narrowed))
    scores = pl.concat(parts)
    del parts
    order = np.argsort(shard_of(pool["content_hash"], shards), kind="stable")
    if scores.height == len(keys) and np.array_equal(scores["id"].to_numpy(), keys.to_numpy()[order]):
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return scores.drop("id").select(pl.all().gather(inverse))
    if keys.n_unique() != len(keys):
        return None
    if scores["id"].n_unique() != scores.height:
        scores = scores.unique("id", keep="first")
    return pl.DataFrame({"id": keys}).join(scores, on="id", how="left", maintain_order="left").drop("id")


SELECTION_COLUMNS: tuple[str, ...] = ("id", "ratio", "compressed_bytes", "compressor", "excluded")
"""The scores' columns a selection reads: each sample's ratio, size, the compressor that measured it, and whether
the quality gate excluded it."""


def _narrow(scores: pl.DataFrame, columns: Sequence[str] | None) -> pl.DataFrame:
    """``columns`` of a shard's scores (all without), the compressor's settings held once per shard, not per row."""
    if columns is None:
        return scores
    scores = _gated(scores).select(columns)
    return scores.with_columns(pl.col("compressor").cast(pl.Categorical)) if "compressor" in columns else scores


def judge_exclusions(result: ScoresResult, previous: ScoresResult | None, jump: float) -> tuple[bool, str]:
    """Whether the quality gate's excluded share stayed within ``jump`` of the previous scores' (of other data: the
    same data scored again is not a change), and a sentence that names the top reasons and files."""
    share = result.excluded_share
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(result.excluded.items(), key=lambda i: -i[1]))
    files = ", ".join(f"{name} ({count:,})" for name, count in result.excluded_sources.items())
    said = f"{share:.2%} of {result.rows:,} samples excluded" + (f": {reasons}; most from {files}" if reasons else "")
    if previous is None or previous.pool_version == result.pool_version:
        return True, f"{said} (no earlier data version to compare with)"
    before = previous.excluded_share
    if share - before > jump:
        return False, f"The excluded share rose from {before:.2%} to {share:.2%} with the new data: {said}."
    return True, f"{said} (was {before:.2%})"


def _score(frame: pl.DataFrame, scoring: ScoringSettings, previous: pl.DataFrame | None) -> tuple[pl.DataFrame, int]:
    """Sizes and the gate's signals of every sample of ``frame``, both reused by content hash from ``previous``; how
    many samples were compressed."""
    sizes, rescored = score_samples(frame, scoring.make_compressor(), previous)
    gated, _ = gate_scores(sizes, frame, scoring.quality, previous)
    return gated, rescored


def _gated(scores: pl.DataFrame) -> pl.DataFrame:
    """Scores with the gate's columns, as selection reads them: scores stored before the gate existed exclude
    nothing."""
    missing = {name: dtype for name, dtype in GATED_SCORES_SCHEMA.items() if name not in scores.columns}
    scores = scores.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in missing.items())
    return scores.select(list(GATED_SCORES_SCHEMA))


def _stored(storage: Storage, previous: ScoresResult | None) -> pl.DataFrame | None:
    """The scores a materialization stored, if they still exist."""
    if previous is None or not storage.exists(previous.file):
        return None
    return storage.read_parquet(previous.file)


def _result(
    storage: Storage,
    path: UPath,
    version: str,
    pool: PoolResult,
    scores: pl.DataFrame,
    rescored: int,
    started: float,
    compressor: Compressor,
) -> ScoresResult:
    return ScoresResult(
        path=str(path),
        file=storage.relative(path),
        version=version,
        pool_version=pool.version,
        rows=scores.height,
        rescored=rescored,
        seconds=round(time.perf_counter() - started, 3),
        mean_ratio=float(scores["ratio"].mean() or 0.0),
        compressor=compressor.describe(),
        excluded=exclusion_counts(scores),
        excluded_sources=top_sources(scores),
        columns=column_schema(scores, SCORES_DESCRIPTIONS),
    )
