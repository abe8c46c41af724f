"""Selection within strata: each value of a facet (source file, record format or script) gets a share of the budget
proportional to its share of the pool (or to given weights), and the method selects within each stratum on its own.

A subset then keeps the pool's mix by construction, however a method's scores favour one stratum (ZIP favours
scripts whose UTF-8 compresses worse). Quotas are whole numbers by largest remainder, so they add up to the budget
exactly; a stratum smaller than its quota gives the rest to the others, in proportion.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from entropy_assets.composition import facet_values
from entropy_assets.entropy_law import law_ratio

from .base import Budget, BudgetUnit, Selection

STRATA: tuple[str, ...] = ("source", "format", "script")
"""The facets a selection may be stratified by."""


@dataclass(frozen=True)
class Stratify:
    """Stratify a selection by ``by``; ``weights`` (a stratum's value to its weight) replace the pool's shares, and
    a stratum they leave out gets nothing."""

    by: str
    weights: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.by not in STRATA:
            raise ValueError(f"stratify must be one of {', '.join(STRATA)}, got {self.by!r}")
        if self.weights is not None and (
            not self.weights or any(not math.isfinite(w) or w < 0 for _, w in self.weights)
        ):
            raise ValueError("stratify weights must be finite, non-negative, and at least one given")

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for configurations and checkpoint keys."""
        return {"by": self.by, "weights": dict(self.weights) if self.weights is not None else None}


def quotas(sizes: Mapping[str, int], budget: int, weights: Mapping[str, float] | None = None) -> dict[str, int]:
    """Each stratum's quota: ``budget`` split in proportion to ``weights`` (default: ``sizes``), by largest
    remainder, none above its stratum's size; what a full stratum cannot take goes to the others. Raises
    ``ValueError`` when the strata together cannot hold the budget."""
    wanted = {name: float(weights.get(name, 0.0)) if weights is not None else float(n) for name, n in sizes.items()}
    if sum(min(sizes[name], budget) for name, w in wanted.items() if w > 0) < budget:
        raise ValueError(f"the strata with a weight hold fewer than the budget of {budget}")
    quota = dict.fromkeys(sizes, 0)
    open_strata = {name for name, w in wanted.items() if w > 0}
    left = budget
    while left > 0:
        total = sum(wanted[name] for name in open_strata)
        exact = {name: left * wanted[name] / total for name in open_strata}
        share = {name: math.floor(value) for name, value in exact.items()}
        by_remainder = sorted(open_strata, key=lambda name: (-(exact[name] - share[name]), name))
        for name in by_remainder[: left - sum(share.values())]:
            share[name] += 1
        for name in open_strata:
            quota[name] += share[name]
        overflow = {name: quota[name] - sizes[name] for name in open_strata if quota[name] > sizes[name]}
        for name in overflow:
            quota[name] = sizes[name]
        left = sum(overflow.values())
        open_strata = {name for name in open_strata if quota[name] < sizes[name]}
    return quota


def stratified_select(
    pool: pl.DataFrame,
    stratify: Stratify,
    budget: int,
    budget_unit: BudgetUnit,
    select: Callable[[pl.DataFrame, int, np.ndarray], Selection],
) -> Selection:
    """``select(stratum_pool, quota, rows)`` within each stratum of ``pool`` (``rows``: the stratum's positions in
    ``pool``), the results in one selection (strata in order of their name, each in its own order). The summary
    gives each stratum's pool size, quota, selected size and zlib-9 ratio (``strata_ratios``; left None when the
    pool has no text: a pool of light columns, whose chosen rows are read afterwards)."""
    started = time.perf_counter()
    Budget(budget, budget_unit).check_fits(pool["n_bytes"].to_numpy())
    labels = facet_values(pool, stratify.by)
    weights = dict(stratify.weights) if stratify.weights is not None else None
    if budget_unit == "samples":
        sizes = {str(k): int(v) for k, v in labels.value_counts(name="n").iter_rows()}
        shares = quotas(sizes, budget, weights)
    else:  # a byte budget: strata share it by their bytes
        totals = pl.DataFrame({"label": labels, "n_bytes": pool["n_bytes"]}).group_by("label").agg(pl.sum("n_bytes"))
        sizes = {str(k): int(v) for k, v in totals.iter_rows()}
        shares = quotas(sizes, budget, weights)
    parts: list[pl.DataFrame] = []
    strata: dict[str, dict[str, Any]] = {}
    inner: Selection | None = None
    warm_counts: Counter[str] = Counter()
    for name in sorted(shares):
        rows = np.flatnonzero((labels == name).to_numpy())
        strata[name] = {"pool": len(rows), "quota": shares[name], "selected": 0, "ratio_zlib9": None}
        if shares[name] == 0:
            continue
        stratum = pool[rows]
        inner = select(stratum, shares[name], rows)
        positions = rows[inner.positions]
        parts.append(inner.provenance.with_columns(position=pl.Series(positions, dtype=pl.Int64)))
        strata[name]["selected"] = len(inner)
        warm_counts.update(inner.summary.get("warm", {}))
    assert inner is not None  # the budget is positive, so some stratum has a quota
    provenance = pl.concat(parts).with_columns(rank=pl.int_range(pl.len(), dtype=pl.Int64))
    summary: dict[str, Any] = {
        "stratify": stratify.describe(),
        "strata": strata,
        "selected_bytes": int(pool["n_bytes"].gather(provenance["position"]).sum()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if warm_counts:
        summary["warm"] = dict(warm_counts)
    config = {**inner.config, "budget": budget, "stratify": stratify.describe()}
    selection = Selection(inner.method, provenance, config, summary)
    return strata_ratios(selection, pool[selection.positions]) if "text" in pool.columns else selection


def strata_ratios(selection: Selection, chosen: pl.DataFrame) -> Selection:
    """``selection`` (stratified) with each stratum's zlib-9 ratio, from its ``chosen`` rows in the order chosen
    (their text, and the columns of the facet the strata are of)."""
    labels = facet_values(chosen, selection.summary["stratify"]["by"])
    strata = {name: dict(stratum) for name, stratum in selection.summary["strata"].items()}
    for name, stratum in strata.items():
        if stratum["quota"]:
            texts = chosen["text"].filter(labels == name).to_list()
            stratum["ratio_zlib9"] = round(law_ratio(texts), 4)
    return dataclasses.replace(selection, summary={**selection.summary, "strata": strata})


def with_budget(config: Any, budget: int) -> Any:
    """``config`` (any method's) with another budget."""
    if hasattr(config, "zip"):  # hierarchical ZIP: the budget is its final pass's
        return dataclasses.replace(config, zip=dataclasses.replace(config.zip, budget=budget))
    return dataclasses.replace(config, budget=budget)
