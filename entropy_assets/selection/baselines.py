"""Baseline selections to compare ZIP against, with the same interface: random, per-sample ratio, longest, dedup.

Budgets in bytes matter for fair comparisons: by per-sample ratio alone the most "informative" samples are the
shortest ones (a compressor's fixed overhead dominates them), and a sample count hides that.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

from entropy_assets.compression import default_threads, make_compressor
from entropy_assets.selection.base import (
    Budget,
    BudgetUnit,
    Selection,
    pool_ids,
    pool_texts,
    provenance_frame,
)

BaselineMethod = Literal["random", "ratio", "longest", "dedup"]
BASELINES: tuple[str, ...] = ("random", "ratio", "longest", "dedup")


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of a baseline selection, validated at construction."""

    method: BaselineMethod
    budget: int
    budget_unit: BudgetUnit = "samples"
    seed: int = 0
    compressor: str = "zstd"
    level: int | None = None
    n_jobs: int = 0

    def __post_init__(self) -> None:
        if self.method not in BASELINES:
            raise ValueError(f"baseline method must be one of {', '.join(BASELINES)}, got {self.method!r}")
        if self.n_jobs < 0:
            raise ValueError(f"BaselineConfig.n_jobs must be >= 0, got {self.n_jobs}")
        Budget(self.budget, self.budget_unit)
        make_compressor(self.compressor, self.level)


def baseline_select(pool: pl.DataFrame, config: BaselineConfig) -> Selection:
    """Select from ``pool`` by a baseline method."""
    budget = Budget(config.budget, config.budget_unit)
    n_bytes = pool["n_bytes"].to_numpy()
    budget.check_fits(n_bytes)
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    scores: np.ndarray | None = None
    if config.method == "random":
        order = rng.permutation(pool.height)
    elif config.method == "longest":
        order = np.lexsort((rng.permutation(pool.height), -n_bytes))
    elif config.method == "ratio":
        compressor = make_compressor(config.compressor, config.level)
        sizes = compressor.compressed_sizes(pool_texts(pool), config.n_jobs or default_threads())
        scores = n_bytes / np.maximum(sizes, 1)
        order = np.lexsort((rng.permutation(pool.height), scores))
    else:  # dedup: the first copy of each distinct content, in random order
        first = pool.with_row_index("_position").unique("content_hash", keep="first", maintain_order=True)
        unique = first["_position"].to_numpy().astype(np.int64)
        order = unique[rng.permutation(len(unique))]
        if budget.amount > budget.used(len(order), int(n_bytes[order].sum())):
            raise ValueError(
                f"budget of {budget.amount} {budget.unit} is larger than the pool's distinct samples "
                f"({budget.used(len(order), int(n_bytes[order].sum()))} {budget.unit})"
            )
    chosen = budget.take_prefix(order, n_bytes)
    provenance = provenance_frame(
        pool_ids(pool), chosen.tolist(), stage1_score=None if scores is None else scores[chosen].tolist()
    )
    return Selection(
        method=config.method,
        provenance=provenance,
        config=asdict(config),
        summary={
            "pool_size": pool.height,
            "selected": len(chosen),
            "selected_bytes": int(n_bytes[chosen].sum()),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
