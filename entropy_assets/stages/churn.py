"""How a subset changed between two of its versions, sample by sample, and why."""

from __future__ import annotations

from collections import Counter

import polars as pl


def subset_changes(
    old_subset: pl.DataFrame, new_subset: pl.DataFrame, old_pool: pl.DataFrame, new_pool: pl.DataFrame
) -> list[dict[str, str]]:
    """The samples added to and removed from a subset (``id`` and ``content_hash`` of each version, with the pools
    they were chosen from), and why: ``new data`` (not in the older pool), ``changed content`` (same id, other
    content), ``removed from data`` (not in the newer pool), or ``outscored`` (in both pools, unchanged, chosen in
    only one version). Samples chosen in both whose content changed are listed too, as ``content changed``."""
    old_hash = dict(zip(old_pool["id"], old_pool["content_hash"], strict=True))
    new_hash = dict(zip(new_pool["id"], new_pool["content_hash"], strict=True))
    old_ids, new_ids = set(old_subset["id"]), set(new_subset["id"])
    rows = []
    for sample in sorted(new_ids - old_ids):
        reason = "new data" if sample not in old_hash else "changed content"
        if sample in old_hash and old_hash[sample] == new_hash[sample]:
            reason = "outscored (now chosen)"
        rows.append({"change": "added", "id": sample, "reason": reason})
    for sample in sorted(old_ids - new_ids):
        reason = "removed from data" if sample not in new_hash else "changed content"
        if sample in new_hash and new_hash[sample] == old_hash[sample]:
            reason = "outscored (no longer chosen)"
        rows.append({"change": "removed", "id": sample, "reason": reason})
    old_chosen = dict(zip(old_subset["id"], old_subset["content_hash"], strict=True))
    new_chosen = dict(zip(new_subset["id"], new_subset["content_hash"], strict=True))
    for sample in sorted(old_ids & new_ids):
        if old_chosen[sample] != new_chosen[sample]:
            rows.append({"change": "content changed", "id": sample, "reason": "changed content, still chosen"})
    return rows


def changes_by_reason(rows: list[dict[str, str]]) -> dict[str, int]:
    """How many samples changed in each way: ``added: new data``, ``removed: outscored (no longer chosen)``, ..."""
    return dict(Counter(f"{row['change']}: {row['reason']}" for row in rows))
