"""Scores of one shard to its winners: hierarchical ZIP's selection within a content-hash shard, a step of its own,
so that an executor runs the shards as separate steps and a data change reselects only the shards it touched.

A shard's selection reads only the shard: its rows from the pool's shard-ordered copy, and its sizes from its
``compression_scores`` partition (stage 1 compresses nothing again). Its winners are stored under a version named by
what they were chosen from (the shard's scores version, the settings, the held-out count, a warm start): the same
inputs are never selected twice. When a shard's samples changed, its selection starts warm from the shard's
previous winners (``reselect: warm``): unchanged winners stay, and the shard's new samples may replace them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import polars as pl

from entropy_assets.compression import KnownSizes
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.hierarchical import HierarchicalConfig, select_within_shard, shard_config
from entropy_assets.selection.warm import WarmStart
from entropy_assets.storage import Storage
from entropy_assets.versions import settings_hash

from .holdout import held_out_hashes
from .pool_result import PoolResult
from .scores import ScoringSettings, expected_versions, shard_rows
from .scores_result import ScoresResult
from .shard_selection_result import ShardSelectionResult
from .subset_settings import CHECKPOINT_SECONDS, SubsetSettings
from .workspace import Workspace

WINNERS_COLUMNS = ("id", "content_hash", "n_bytes", "rank")
"""What a shard's winners file holds, in the order chosen."""


def hierarchical_config(subset: SubsetSettings) -> HierarchicalConfig:
    """The hierarchical ZIP configuration of ``subset``; a ``ValueError`` for any other method."""
    if not isinstance(subset.config, HierarchicalConfig):
        raise ValueError(f"shard selections belong to zip_hierarchical, not {subset.method}")
    return subset.config


def shard_settings_hash(subset: SubsetSettings) -> str:
    """What names a shard's ZIP settings: its share of the budget, the K's, the compressor and the seed (not the
    threads or processes, which change no winner), and the held-out count."""
    config = hierarchical_config(subset)
    shard = {**asdict(shard_config(config)), "n_jobs": 0}
    return settings_hash({"shard": shard, "shards": config.shards, "holdout": subset.holdout, **_eval(subset)})


def _eval(subset: SubsetSettings) -> dict[str, list[str]]:
    """The evaluation files, in the settings hash only when there are some (earlier winners keep their names)."""
    return {"eval_paths": list(subset.eval_paths)} if subset.eval_paths else {}


def select_shard(
    workspace: Workspace,
    pool: PoolResult,
    scores: ScoresResult | None,
    scoring: ScoringSettings,
    shard: str,
    subset: SubsetSettings,
    previous: ShardSelectionResult | None = None,
) -> ShardSelectionResult:
    """The winners of ``shard`` for ``subset`` (zip_hierarchical at one budget), from the shard's latest ``scores``,
    which must be current for ``pool``; ``previous`` (the partition's last winners) is where a warm selection
    starts."""
    started = time.perf_counter()
    storage = workspace.storage
    config = hierarchical_config(subset)
    current = expected_versions(storage, pool, scoring)[shard]
    if scores is None or scores.version != current:
        raise ValueError(
            f"{workspace.name}/compression_scores[{shard}] is not scored for pool version {pool.version} yet; "
            "materialize that partition first"
        )
    settings = shard_settings_hash(subset)
    if previous is not None and is_current(previous, scores.version, settings) and storage.exists(previous.file):
        return replace(previous, pool_version=pool.version, seconds=0.0, reselect="reused")  # nothing changed
    warm_from = _warm_from(storage, subset, settings, previous)
    version = settings_hash({"scores": scores.version, "settings": settings, "warm_from": warm_from})
    folder = workspace.folder("shard_selection", str(subset.budget), shard)
    name = f"{version}.parquet"

    def result(path: str, winners: int, candidates: int, how: str, resumed: int = 0) -> ShardSelectionResult:
        return ShardSelectionResult(
            path=path,
            file=storage.relative(storage.path(*folder, name)),
            version=version,
            pool_version=pool.version,
            scores_version=scores.version,
            scores_file=scores.file,
            shard=shard,
            budget=subset.budget,
            settings=settings,
            winners=winners,
            candidates=candidates,
            seconds=round(time.perf_counter() - started, 3),
            reselect=how,
            resumed_from_round=resumed,
        )

    if storage.exists(*folder, name):  # these inputs were selected before: the same winners
        stored = storage.read_parquet(*folder, name, columns=["id"])
        return result(str(storage.path(*folder, name)), stored.height, scores.rows, "reused")
    sizes = storage.read_parquet(scores.file, columns=["id", "compressed_bytes", "excluded"])
    frame = _offered(storage, pool, scoring, shard, subset, sizes)
    aligned = frame.select("id").join(sizes, on="id", how="left", maintain_order="left")["compressed_bytes"]
    known = KnownSizes(dict(scores.compressor), aligned.to_numpy()) if aligned.null_count() == 0 else None
    warm = _warm_start(storage, previous) if warm_from is not None else None
    checkpoint = _checkpoint(workspace, folder, version)
    selection = select_within_shard(frame, config, checkpoint=checkpoint, warm=warm, known=known)
    winners = selection.provenance.select("id", "rank").join(
        frame.select("id", "content_hash", "n_bytes"), on="id", how="left"
    )
    path = storage.write_version(winners.sort("rank").select(WINNERS_COLUMNS), *folder, name)
    if checkpoint is not None:
        checkpoint.remove()
    resumed = int(selection.summary.get("resumed_from_round", 0))
    return result(str(path), winners.height, frame.height, "warm" if warm is not None else "full", resumed)


def is_current(result: ShardSelectionResult | None, scores_version: str, settings: str) -> bool:
    """Whether a shard's winners were chosen from the shard's ``scores_version`` with the ``settings``."""
    return result is not None and result.scores_version == scores_version and result.settings == settings


@dataclass(frozen=True)
class ShardWinners:
    """Every shard's winners for one budget: what the final pass of hierarchical ZIP selects among."""

    results: dict[str, ShardSelectionResult]

    @property
    def version(self) -> str:
        """Names the winners of every shard together."""
        return settings_hash({shard: result.version for shard, result in sorted(self.results.items())})

    def frame(self, storage: Storage) -> pl.DataFrame:
        """Every shard's winners (``WINNERS_COLUMNS``), shard after shard."""
        return pl.concat([storage.read_parquet(result.file) for _, result in sorted(self.results.items())])


def gather_winners(
    workspace: Workspace,
    pool: PoolResult,
    scoring: ScoringSettings,
    subset: SubsetSettings,
    latest: dict[str, ShardSelectionResult | None],
) -> ShardWinners:
    """Every shard's latest winners for ``subset``, each current for ``pool`` and the settings; a ``ValueError``
    naming the partitions to materialize otherwise."""
    expected = expected_versions(workspace.storage, pool, scoring)
    settings = shard_settings_hash(subset)
    stale = [shard for shard, version in expected.items() if not is_current(latest.get(shard), version, settings)]
    if stale:
        raise ValueError(
            f"{workspace.name}/shard_selection at budget {subset.budget}: shard(s) {', '.join(stale)} have no winners "
            f"for pool version {pool.version} and these settings yet; materialize those partitions first"
        )
    return ShardWinners({shard: result for shard, result in latest.items() if result is not None})


def _offered(
    storage: Storage,
    pool: PoolResult,
    scoring: ScoringSettings,
    shard: str,
    subset: SubsetSettings,
    scores: pl.DataFrame,
) -> pl.DataFrame:
    """The shard's samples offered to selection: its rows of the shard-ordered copy, less the held-out ones and those
    the quality gate excluded (``scores``' ``excluded``)."""
    frame = shard_rows(storage, pool, shard, scoring.shards)
    excluded = scores.filter(pl.col("excluded").is_not_null())["id"]
    if len(excluded):
        frame = frame.filter(~pl.col("id").is_in(excluded.implode()))
    if subset.holdout > 0 or subset.eval_paths:
        held = held_out_hashes(storage, pool.file, subset.holdout, subset.eval_paths, subset.columns)
        frame = frame.filter(~pl.col("content_hash").is_in(held.implode()))
    return frame


def _warm_from(
    storage: Storage, subset: SubsetSettings, settings: str, previous: ShardSelectionResult | None
) -> str | None:
    """The previous winners' version when this selection starts warm from them: same settings, files still there."""
    if previous is None or subset.reselect != "warm" or previous.settings != settings:
        return None
    if not (storage.exists(previous.file) and storage.exists(previous.scores_file)):
        return None
    return previous.version


def _warm_start(storage: Storage, previous: ShardSelectionResult | None) -> WarmStart:
    """The shard's previous winners, with the content hashes its earlier samples had (its earlier scores)."""
    assert previous is not None
    winners = storage.read_parquet(previous.file, columns=["id", "content_hash", "rank"])
    earlier = storage.read_parquet(previous.scores_file, columns=["content_hash"])["content_hash"]
    return WarmStart.from_provenance(winners, set(earlier.to_list()))


def _checkpoint(workspace: Workspace, folder: tuple[str, ...], version: str) -> SelectionCheckpoint | None:
    """Where a shard's selection saves its rounds (local storage only): beside its winners."""
    target = workspace.storage.local_path(*folder, f"{version}.checkpoint")
    if target is None:
        return None
    return SelectionCheckpoint(target, CHECKPOINT_SECONDS, warn=workspace.log.warning, info=workspace.log.info)
