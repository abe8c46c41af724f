"""Audits of recorded results: what a training run trained on, how two versions of a subset differ and why, and
how R and L moved across data versions.

Every answer comes from results as the event log recorded them (the Dagster plugin reads them:
``entropy_assets.dagster.history``) and the versioned files they point to, which are never overwritten: an audit
of an old run reads exactly the subset and pool it used.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from entropy_assets.entropy_law import LawPoint, data_versions

from .churn import changes_by_reason, subset_changes
from .metadata import StoredResult, nan_if_none, written_under
from .pool_result import RawDataResult
from .subset_result import SubsetResult
from .training_result import TrainingResult


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


def run_audit(
    pipeline: str,
    run: TrainingResult,
    raw: RawDataResult | None,
    *,
    run_id: str,
    partition: str | None,
    timestamp: float,
) -> Audit:
    """Which subset version, pool version, raw files (with their hashes) and sample ids training ``run`` used:
    ``raw`` is the observation of its raw data version (None if none recorded it); ``run_id``, ``partition`` and
    ``timestamp`` are its materialization's."""
    subset = _read(run, run.subset_file, "subset_file")
    facts = {
        "run_id": run_id,
        "partition": partition,
        "materialized": _time(timestamp),
        "first_epoch_loss": run.first_epoch_loss,
        "performance": nan_if_none(run.performance),
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
    return Audit(f"training run {run_id[:8]} of {pipeline}/training_run[{partition}]", facts, rows)


def diff_audit(
    pipeline: str,
    partition: str,
    versions: Mapping[str, SubsetResult],
    *,
    old: str | None = None,
    new: str | None = None,
) -> Audit:
    """Samples added to and removed from a subset between two of its ``versions`` (ordered by their latest
    materialization; by default the last two), and why (``subset_changes``)."""
    names = list(versions)
    if len(names) < 2 and not (old and new):
        raise AuditError(f"{pipeline}/selected_subset[{partition}] has {len(names)} version(s); a diff needs two")
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


def history_audit(pipeline: str, points: Sequence[LawPoint]) -> Audit:
    """Compression ratio R and first-epoch loss L of every training run (``points``), by data version in time
    order."""
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
