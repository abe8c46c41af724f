"""How a subset changed between two of its versions, sample by sample, and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Churn:
    """A subset against its previous version: samples kept, added and removed, and how many changed for each
    reason (``added: new data``, ``removed: outscored (no longer chosen)``, ...)."""

    kept: int
    added: int
    removed: int
    by_reason: Mapping[str, int]


def subset_changes(
    old_subset: pl.DataFrame, new_subset: pl.DataFrame, old_pool: pl.DataFrame | None, new_pool: pl.DataFrame
) -> list[dict[str, str]]:
    """The samples added to and removed from a subset (``id`` and ``content_hash`` of each version, with the pools
    they were chosen from), and why: ``new data`` (not in the older pool), ``changed content`` (same id, other
    content), ``removed from data`` (not in the newer pool), or ``outscored`` (in both pools, unchanged, chosen in
    only one version). Samples chosen in both whose content changed are listed too, as ``content changed``. Without
    the older pool, an added sample is ``now chosen``: whether it is new data is not known."""
    old_hash = dict(zip(old_pool["id"], old_pool["content_hash"], strict=True)) if old_pool is not None else None
    new_hash = dict(zip(new_pool["id"], new_pool["content_hash"], strict=True))
    old_ids, new_ids = set(old_subset["id"]), set(new_subset["id"])
    rows = []
    for sample in sorted(new_ids - old_ids):
        if old_hash is None:
            reason = "now chosen"
        elif sample not in old_hash:
            reason = "new data"
        else:
            reason = "outscored (now chosen)" if old_hash[sample] == new_hash[sample] else "changed content"
        rows.append({"change": "added", "id": sample, "reason": reason})
    old_chosen = dict(zip(old_subset["id"], old_subset["content_hash"], strict=True))
    for sample in sorted(old_ids - new_ids):
        if sample not in new_hash:
            reason = "removed from data"
        else:
            reason = "outscored (no longer chosen)" if new_hash[sample] == old_chosen[sample] else "changed content"
        rows.append({"change": "removed", "id": sample, "reason": reason})
    new_chosen = dict(zip(new_subset["id"], new_subset["content_hash"], strict=True))
    for sample in sorted(old_ids & new_ids):
        if old_chosen[sample] != new_chosen[sample]:
            rows.append({"change": "content changed", "id": sample, "reason": "changed content, still chosen"})
    return rows


def changes_by_reason(rows: list[dict[str, str]]) -> dict[str, int]:
    """How many samples changed in each way: ``added: new data``, ``removed: outscored (no longer chosen)``, ..."""
    return dict(Counter(f"{row['change']}: {row['reason']}" for row in rows))


def churn(
    old_subset: pl.DataFrame, new_subset: pl.DataFrame, old_pool: pl.DataFrame | None, new_pool: pl.DataFrame
) -> Churn:
    """The churn of ``new_subset`` against ``old_subset`` (see ``subset_changes``)."""
    old_ids, new_ids = set(old_subset["id"]), set(new_subset["id"])
    rows = subset_changes(old_subset, new_subset, old_pool, new_pool)
    return Churn(len(old_ids & new_ids), len(new_ids - old_ids), len(old_ids - new_ids), changes_by_reason(rows))
