"""Explicit pruning of old output versions: never automatic, never of a file something kept still points to.

Outputs are written under their versions and never overwritten, so storage grows with every data version.
``plan_prune`` lists what may go (dry run); ``prune`` deletes exactly that list.
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg
from upath import UPath

from .storage import EntropyStorage, materializations, metadata_values, output_base

VERSIONED_ASSETS: tuple[str, ...] = ("pool", "compression_scores", "selected_subset", "training_run")


@dataclass(frozen=True)
class PrunePlan:
    """Files (with their sibling exports and plots) that only older versions refer to, and those kept."""

    remove: tuple[UPath, ...]
    kept_versions: int
    kept_files: int

    def describe(self) -> str:
        lines = [f"keeping the last {self.kept_versions} version(s) of each output: {self.kept_files} file(s) kept"]
        lines += [f"  remove {path}" for path in self.remove] or ["  nothing to remove"]
        return "\n".join(lines)


def plan_prune(instance: dg.DagsterInstance, pipeline: str, keep: int) -> PrunePlan:
    """What ``prune`` would delete: the files of all but the ``keep`` latest versions of each output (per
    partition), except those a kept training run or subset still uses."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    kept: set[str] = set()
    older: set[str] = set()
    base = ""
    for name in VERSIONED_ASSETS:
        by_partition: dict[str | None, list[dict[str, Any]]] = {}
        for record in materializations(instance, dg.AssetKey([pipeline, name]), None):
            values = metadata_values(record)
            if (found := output_base(values)) is not None:
                by_partition.setdefault(record.partition_key, []).append(values)
                base = found
        for history in by_partition.values():
            files = list(dict.fromkeys(str(v["file"]) for v in history))  # distinct, oldest first
            kept.update(files[-keep:])
            older.update(files[:-keep])
            for values in history:
                if str(values["file"]) in files[-keep:]:
                    kept.update(str(values[f]) for f in ("subset_file", "pool_file") if f in values)
    if not base:
        return PrunePlan((), keep, 0)
    remove = sorted({path for file in older - kept for path in _with_siblings(UPath(base), file)}, key=str)
    protected = {path for file in kept for path in _with_siblings(UPath(base), file)}
    return PrunePlan(tuple(p for p in remove if p not in protected), keep, len(protected))


def prune(plan: PrunePlan) -> int:
    """Delete the files ``plan`` lists; returns how many were deleted."""
    deleted = 0
    for path in plan.remove:
        if path.exists():
            path.unlink()
            deleted += 1
    return deleted


def _with_siblings(base: UPath, file: str) -> list[UPath]:
    """The file and the others written with it (exports, plots): same folder, same name up to the last suffix."""
    target = EntropyStorage(base_path=str(base)).path(file)  # a recorded file outside the storage is refused
    prefix = target.name[: -len(target.suffix)] + "." if target.suffix else target.name
    if not target.parent.exists():
        return []
    return [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
