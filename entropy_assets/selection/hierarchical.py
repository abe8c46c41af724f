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

from entropy_assets.compression import default_threads
from entropy_assets.scoring import shard_of
from entropy_assets.versions import input_fingerprint

from .base import Selection
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
) -> Selection:
    """Select ``config.zip.budget`` from ``pool`` in two levels: ZIP within each shard, then ZIP over the union.

    With ``checkpoint``, each finished shard's winners are saved beside it (and a shard's rounds while it runs),
    and so are the final pass's rounds: a rerun after a kill recomputes no finished shard and resumes the final
    pass. The caller removes the checkpoint (which removes its parts). With ``warm``, the shards select as
    always, and the final pass starts from the earlier selection's samples still in the pool (added to the union).
    """
    started = time.perf_counter()
    shard = shard_of(pool["content_hash"], config.shards)
    share = math.ceil(config.oversample * config.zip.budget / config.shards)
    columns = [c for c in ("id", "text", "n_bytes", "record") if c in pool.columns]
    jobs = []
    for index in range(config.shards):
        positions = np.flatnonzero(shard == index)
        saved = None if checkpoint is None else (checkpoint.part(f"shard{index}").path, checkpoint.every_seconds)
        jobs.append((pool[positions].select(columns), positions, _shard_config(config.zip, share), saved))
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
    final = zip_select(pool[union], config.zip, checkpoint=final_checkpoint, warm=warm)
    provenance = final.provenance.with_columns(
        position=pl.Series(union[final.positions], dtype=final.provenance["position"].dtype)
    )
    summary = {
        **final.summary,
        "pool_size": pool.height,
        "shards": config.shards,
        "union_size": len(union),
        "shard_seconds": round(shard_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if checkpoint is not None:
        summary["shards_resumed"] = sum(resumed for _, resumed in results)
    settings: dict[str, Any] = {**asdict(config), "zip": asdict(config.zip)}
    return Selection(method=f"{final.method}_hierarchical", provenance=provenance, config=settings, summary=summary)


def _shard_config(config: ZipConfig, share: int) -> ZipConfig:
    return replace(config, budget=share, n_jobs=1)


_ShardJob = tuple[pl.DataFrame, np.ndarray, ZipConfig, tuple[Path, float] | None]
"""A shard's samples, their pool positions, its settings, and where its checkpoint is (path, seconds) if any."""


def _select_shard(job: _ShardJob) -> tuple[np.ndarray, bool]:
    """The pool positions a shard keeps (all of it when it is no larger than its share), and whether they were
    read from the shard's checkpoint rather than selected."""
    frame, positions, config, saved = job
    available = frame.height if config.budget_unit == "samples" else int(frame["n_bytes"].sum())
    if available <= config.budget:
        return positions, False
    k3 = min(config.k3, config.budget) if config.budget_unit == "samples" else config.k3
    shard_config = replace(config, k3=k3, k2=max(k3, config.k2), k1=max(k3, config.k2, config.k1))
    if saved is None:
        return positions[zip_select(frame, shard_config).positions], False
    # Built here, in the worker: a caller's ``warn`` callback need not survive pickling.
    checkpoint = SelectionCheckpoint(*saved)
    data = [f"{text}\0{record}".encode() for text, record in zip(frame["text"], _records(frame), strict=True)]
    fingerprint = input_fingerprint(
        frame["id"].to_list(), data, {**asdict(shard_config), "n_jobs": 0, "positions": positions.tobytes().hex()}
    )
    done = checkpoint.load(fingerprint)
    if done is not None:
        return done["winners"], True
    rounds = checkpoint.part("zip")
    winners = positions[zip_select(frame, shard_config, checkpoint=rounds).positions]
    checkpoint.save(fingerprint, {"winners": winners})
    rounds.remove()
    return winners, False


def _records(frame: pl.DataFrame) -> list[str]:
    return frame["record"].to_list() if "record" in frame.columns else [""] * frame.height
