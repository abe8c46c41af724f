"""Hierarchical ZIP: select within shards of the pool in parallel processes, then run ZIP over the union of the
shards' winners to the final budget.

Each shard keeps ``oversample`` times its share of the budget, so the final pass still chooses among candidates.
What this costs in the chosen set's compression ratio, against one ZIP pass over the whole pool, is measured by
``benchmarks/zip_selection.py hierarchical``.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from entropy_assets.compression import KnownSizes, default_threads
from entropy_assets.scoring import shard_of
from entropy_assets.versions import input_fingerprint

from .base import Selection, provenance_frame
from .checkpoint import SelectionCheckpoint
from .warm import WarmStart
from .zip import ZipConfig, zip_select


@dataclass(frozen=True)
class HierarchicalConfig:
    """ZIP settings for the final pass, and how the pool is sharded."""

    zip: ZipConfig
    shards: int = 8
    oversample: float = 2.0
    """Each shard keeps ``oversample * budget / shards`` (samples or bytes) for the final pass."""
    processes: int = 0
    """Worker processes for the shards; 0 means one per core."""

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"HierarchicalConfig.shards must be >= 1, got {self.shards}")
        if self.oversample < 1.0:
            raise ValueError(f"HierarchicalConfig.oversample must be >= 1, got {self.oversample}")
        if self.processes < 0:
            raise ValueError(f"HierarchicalConfig.processes must be >= 0, got {self.processes}")


def hierarchical_zip_select(
    pool: pl.DataFrame,
    config: HierarchicalConfig,
    *,
    checkpoint: SelectionCheckpoint | None = None,
    warm: WarmStart | None = None,
    known: KnownSizes | None = None,
) -> Selection:
    """Select ``config.zip.budget`` from ``pool`` in two levels: ZIP within each shard, then ZIP over the union.

    With ``checkpoint``, each finished shard's winners are saved beside it (and a shard's rounds while it runs),
    and so are the final pass's rounds: a rerun after a kill recomputes no finished shard and resumes the final
    pass. The caller removes the checkpoint (which removes its parts). With ``warm``, the shards select as
    always, and the final pass starts from the earlier selection's samples still in the pool (added to the union).
    ``known`` (the pool's sizes from the scores) spares each shard's stage 1 compressing its samples again.

    This runs every shard in this call (in worker processes); the Dagster pipeline runs each shard as a partition
    of its own (``select_within_shard``) and the final pass over their winners (``final_pass``).
    """
    started = time.perf_counter()
    shard = shard_of(pool["content_hash"], config.shards)
    columns = [c for c in ("id", "text", "n_bytes", "record") if c in pool.columns]
    jobs = []
    for index in range(config.shards):
        positions = np.flatnonzero(shard == index)
        saved = None if checkpoint is None else (checkpoint.part(f"shard{index}").path, checkpoint.every_seconds)
        sizes = None if known is None else KnownSizes(known.settings, known.sizes[positions])
        jobs.append((pool[positions].select(columns), positions, config, saved, sizes))
    processes = config.processes or default_threads()
    if processes == 1 or config.shards == 1:
        results = [_select_shard(job) for job in jobs]
    else:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as executor:
            results = list(executor.map(_select_shard, jobs))
    winners = [positions for positions, _ in results]
    shard_seconds = time.perf_counter() - started
    kept = warm.kept(pool) if warm is not None else np.array([], dtype=np.int64)
    union = np.unique(np.concatenate([*winners, kept])) if winners else kept
    final_checkpoint = checkpoint.part("final") if checkpoint else None
    final = final_pass(pool[union], config, pool_size=pool.height, checkpoint=final_checkpoint, warm=warm)
    provenance = final.provenance.with_columns(
        position=pl.Series(union[final.positions], dtype=final.provenance["position"].dtype)
    )
    summary = {
        **final.summary,
        "shard_seconds": round(shard_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if checkpoint is not None:
        summary["shards_resumed"] = sum(resumed for _, resumed in results)
    return replace(final, provenance=provenance, summary=summary)


def shard_config(config: HierarchicalConfig) -> ZipConfig:
    """The ZIP settings of a shard's selection: ``oversample`` times its share of the budget, one thread (shards
    run side by side), and K's no larger than that share."""
    share = math.ceil(config.oversample * config.zip.budget / config.shards)
    zip_config = replace(config.zip, budget=share, n_jobs=1)
    k3 = min(zip_config.k3, share) if zip_config.budget_unit == "samples" else zip_config.k3
    return replace(zip_config, k3=k3, k2=max(k3, zip_config.k2), k1=max(k3, zip_config.k2, zip_config.k1))


def select_within_shard(
    frame: pl.DataFrame,
    config: HierarchicalConfig,
    *,
    checkpoint: SelectionCheckpoint | None = None,
    warm: WarmStart | None = None,
    known: KnownSizes | None = None,
) -> Selection:
    """The winners of one shard (``frame``: its samples, with ``id``, ``text`` and ``n_bytes``): ZIP to the shard's
    share (``shard_config``), or every sample when the shard holds no more than its share. ``checkpoint`` saves the
    rounds, ``warm`` starts from the shard's earlier winners, ``known`` are the shard's sizes from its scores."""
    zip_config = shard_config(config)
    available = frame.height if zip_config.budget_unit == "samples" else int(frame["n_bytes"].sum())
    if available <= zip_config.budget:
        everything = provenance_frame(frame["id"], list(range(frame.height)))
        return Selection("zip_shard", everything, asdict(zip_config), {"pool_size": frame.height, "seconds": 0.0})
    selection = zip_select(frame, zip_config, checkpoint=checkpoint, warm=warm, known=known)
    return replace(selection, method="zip_shard")


def final_pass(
    union: pl.DataFrame,
    config: HierarchicalConfig,
    *,
    pool_size: int,
    checkpoint: SelectionCheckpoint | None = None,
    warm: WarmStart | None = None,
) -> Selection:
    """ZIP to the whole budget over ``union``, the shards' winners (and a warm start's samples still in the pool),
    chosen from a pool of ``pool_size`` samples. Positions are into ``union``."""
    started = time.perf_counter()
    final = zip_select(union, config.zip, checkpoint=checkpoint, warm=warm)
    summary = {
        **final.summary,
        "pool_size": pool_size,
        "shards": config.shards,
        "union_size": union.height,
        "seconds": round(time.perf_counter() - started, 3),
    }
    settings: dict[str, Any] = {**asdict(config), "zip": asdict(config.zip)}
    return Selection(
        method=f"{final.method}_hierarchical", provenance=final.provenance, config=settings, summary=summary
    )


_ShardJob = tuple[pl.DataFrame, np.ndarray, HierarchicalConfig, tuple[Path, float] | None, KnownSizes | None]
"""A shard's samples, their pool positions, the settings, where its checkpoint is (path, seconds) if any, and its
sizes from the scores if known."""


def _select_shard(job: _ShardJob) -> tuple[np.ndarray, bool]:
    """The pool positions a shard keeps (all of it when it is no larger than its share), and whether they were
    read from the shard's checkpoint rather than selected."""
    frame, positions, config, saved, known = job
    if saved is None:
        return positions[select_within_shard(frame, config, known=known).positions], False
    # Built here, in the worker: a caller's ``warn`` callback need not survive pickling.
    checkpoint = SelectionCheckpoint(*saved)
    data = [f"{text}\0{record}".encode() for text, record in zip(frame["text"], _records(frame), strict=True)]
    fingerprint = input_fingerprint(
        frame["id"].to_list(),
        data,
        {**asdict(shard_config(config)), "n_jobs": 0, "positions": positions.tobytes().hex()},
    )
    done = checkpoint.load(fingerprint)
    if done is not None:
        return done["winners"], True
    rounds = checkpoint.part("zip")
    winners = positions[select_within_shard(frame, config, checkpoint=rounds, known=known).positions]
    checkpoint.save(fingerprint, {"winners": winners})
    rounds.remove()
    return winners, False


def _records(frame: pl.DataFrame) -> list[str]:
    return frame["record"].to_list() if "record" in frame.columns else [""] * frame.height
