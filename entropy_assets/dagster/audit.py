"""Audits from a Dagster instance: what a training run trained on, how two versions of a subset differ and why,
and how R and L moved across data versions.

Every answer comes from the event log (materialization and observation metadata) and the versioned files it
points to, which are never overwritten: an audit of an old run reads exactly the subset and pool it used.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import polars as pl

from entropy_assets.entropy_law import data_versions
from entropy_assets.stages import RawDataResult, SubsetResult, TrainingResult
from entropy_assets.stages.churn import changes_by_reason, subset_changes

from .events import StoredResult, all_results, observed, written_under
from .law import law_points


class AuditError(ValueError):
    """The instance holds nothing that answers the question; the message says what is missing."""


@dataclass(frozen=True)
class Audit:
    """An audit's answer: a title, key facts, and a table of rows."""

    title: str
    facts: dict[str, Any]
    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, **self.facts, "rows": self.rows}

    def render(self, fmt: str = "table") -> str:
        """As ``table`` (for a terminal), ``markdown`` (for a review) or ``json``."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, default=str)
        columns = list(self.rows[0]) if self.rows else []
        if fmt == "markdown":
            lines = [f"### {self.title}", ""]
            lines += [f"- **{key}**: {_cell(value)}" for key, value in self.facts.items()]
            if columns:
                lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in self.rows]
            return "\n".join(lines)
        width = max((len(k) for k in self.facts), default=0)
        lines = [self.title]
        for key, value in self.facts.items():
            if isinstance(value, dict) and value:
                lines.append(f"  {key}")
                lines.extend(f"    {inner}  {_cell(item)}" for inner, item in value.items())
            else:
                lines.append(f"  {key:<{width}}  {_cell(value)}")
        if columns:
            widths = {c: max(len(c), *(len(_cell(row[c])) for row in self.rows)) for c in columns}
            lines += ["", "  ".join(f"{c:<{widths[c]}}" for c in columns)]
            lines += ["  ".join(f"{_cell(row[c]):<{widths[c]}}" for c in columns) for row in self.rows]
        return "\n".join(lines)


def audit_run(
    instance: dg.DagsterInstance, pipeline: str, *, partition: str | None = None, run_id: str | None = None
) -> Audit:
    """Which subset version, pool version, raw files (with their hashes) and sample ids a training run used.

    The run is the latest ``training_run`` materialization, of ``partition`` or by Dagster ``run_id`` if given.
    """
    key = dg.AssetKey([pipeline, "training_run"])
    runs = all_results(instance, key, TrainingResult, partition)
    if run_id:
        runs = [(record, run) for record, run in runs if record.run_id.startswith(run_id)]
    if not runs:
        which = f" in run {run_id}" if run_id else f" of partition {partition}" if partition else ""
        raise AuditError(f"no materialization of {key.to_user_string()}{which} in this instance")
    record, run = runs[-1]
    subset = _read(run, run.subset_file, "subset_file")
    raw = observed(instance, dg.AssetKey([pipeline, "raw_data"]), RawDataResult, run.raw_data_version)
    facts = {
        "run_id": record.run_id,
        "partition": record.partition_key,
        "materialized": _time(record.timestamp),
        "first_epoch_loss": run.first_epoch_loss,
        "performance": _nan_if_none(run.performance),
        "subset_ratio_zlib9": run.subset_ratio_zlib9,
        "selected_subset_version": run.selected_subset_version,
        "subset_file": run.subset_file,
        "subset_content_version": run.subset_version,
        "pool_version": run.pool_version,
        "pool_file": run.pool_file,
        "raw_data_version": run.raw_data_version,
        "raw_files": (dict(raw.file_hashes) if raw else {}) or "(no observation with this version recorded its files)",
        "samples": subset.height,
    }
    rows = subset.sort("rank").select("rank", "id", "source", "content_hash").to_dicts()
    return Audit(f"training run {record.run_id[:8]} of {pipeline}/training_run[{record.partition_key}]", facts, rows)


def diff_subsets(
    instance: dg.DagsterInstance, pipeline: str, partition: str, *, old: str | None = None, new: str | None = None
) -> Audit:
    """Samples added to and removed from a subset between two of its versions (by default the last two), and why
    (``subset_changes``)."""
    key = dg.AssetKey([pipeline, "selected_subset"])
    versions: dict[str, SubsetResult] = {}
    for _record, subset in all_results(instance, key, SubsetResult, partition):
        versions.pop(subset.version, None)
        versions[subset.version] = subset  # ordered by their latest materialization
    names = list(versions)
    if len(names) < 2 and not (old and new):
        raise AuditError(f"{key.to_user_string()}[{partition}] has {len(names)} version(s); a diff needs two")
    old_version, new_version = _pick(names, old, -2), _pick(names, new, -1)
    before, after = versions[old_version], versions[new_version]
    old_subset, new_subset = _read(before, before.file, "file"), _read(after, after.file, "file")
    old_pool, new_pool = _read(before, before.pool_file, "pool_file"), _read(after, after.pool_file, "pool_file")
    rows = subset_changes(old_subset, new_subset, old_pool, new_pool)
    old_ids, new_ids = set(old_subset["id"]), set(new_subset["id"])
    facts = {
        "old_version": old_version,
        "new_version": new_version,
        "old_pool_version": before.pool_version,
        "new_pool_version": after.pool_version,
        "old_ratio_zlib9": before.ratio_zlib9,
        "new_ratio_zlib9": after.ratio_zlib9,
        "kept": len(old_ids & new_ids),
        "kept_with_changed_content": sum(r["change"] == "content changed" for r in rows),
        "added": len(new_ids - old_ids),
        "removed": len(old_ids - new_ids),
        "by_reason": changes_by_reason(rows),
    }
    return Audit(f"{pipeline}/selected_subset[{partition}]: {old_version} -> {new_version}", facts, rows)


def history(instance: dg.DagsterInstance, pipeline: str) -> Audit:
    """Compression ratio R and first-epoch loss L of every training run, by data version in time order."""
    points = law_points(instance, dg.AssetKey([pipeline, "training_run"]))
    versions = data_versions(points)
    rows = [
        {
            "version": f"v{versions.index(p.data_version) + 1}",
            "data_version": p.data_version[:12],
            "trained": _time(p.timestamp),
            "method": p.method,
            "budget": p.budget,
            "R": round(p.ratio, 4),
            "L": round(p.loss, 4),
            "Z": round(p.performance, 4) if p.performance is not None else None,
        }
        for p in points
    ]
    return Audit(f"{pipeline}: R and L by data version", {"runs": len(points), "data_versions": len(versions)}, rows)


def pipelines(instance: dg.DagsterInstance) -> list[str]:
    """Pipelines with a training run or a subset in this instance."""
    names = {k.path[0] for k in instance.get_asset_keys() if len(k.path) == 2 and k.path[1] == "selected_subset"}
    return sorted(names)


def _read(result: StoredResult, file: str, field: str) -> pl.DataFrame:
    """The parquet file ``file`` that ``result`` recorded (as ``field``), read from the storage the result was
    written to; a recorded file outside that storage is refused."""
    try:
        target = written_under(result).path(file)
    except ValueError as error:
        raise AuditError(f"recorded {field} {file!r}: {error}") from error
    if not target.exists():
        raise AuditError(f"{target} is gone: was it pruned?")
    return written_under(result).read_parquet(file)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else value


def _pick(names: Sequence[str], wanted: str | None, default: int) -> str:
    if wanted is None:
        return names[default]
    matches = [n for n in names if n.startswith(wanted)]
    if len(matches) != 1:
        raise AuditError(f"version {wanted!r} matches {len(matches)} of {', '.join(names)}")
    return matches[0]


def _time(timestamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)
