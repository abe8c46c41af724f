"""What a Dagster instance recorded, as JSON, to compare two runs of the graph (say, before and after a refactor).

    python scripts/metadata_snapshot.py --dagster-home .dagster_home > after.json
    python scripts/metadata_snapshot.py --compare before.json after.json

A snapshot holds, for the latest materialization of every asset and partition, the latest observation of every
source asset and every check evaluation: each metadata entry's key, Dagster type and value, in order. A
comparison reports every key, order, type or value that differs, except values that depend on where and when the
graph ran (absolute paths, run ids in file names, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

PLACE_OR_TIME = frozenset({"path", "export", "plot_path", "plots", "paths", "files", "seconds", "tokens_per_second"})
"""Metadata whose values depend on the checkout's location or on the machine's speed."""
RUN_ID = re.compile(r"\.[0-9a-f]{8}\.(json|loss_curve\.png)$")


def snapshot(home: str) -> dict[str, dict[str, Any]]:
    """Every latest materialization, observation and check evaluation of the instance at ``home``."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(home)
    found: dict[str, dict[str, Any]] = {}

    def plain(value: Any) -> Any:
        """A metadata value as JSON can hold it: Dagster's own records (a table's schema, say), which refuse even
        to be iterated, as Dagster serializes them."""
        try:
            json.dumps(value, default=str)
            return value
        except Exception:
            return json.loads(dg.serialize_value(value))

    def entries(metadata: Any) -> dict[str, Any]:
        return {key: [type(value).__name__, plain(value.value)] for key, value in metadata.items()}

    for key in sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string()):
        for record in instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10000).records:
            name = f"{key.to_user_string()}[{record.partition_key or ''}]"
            if record.asset_materialization is not None and name not in found:
                found[name] = entries(record.asset_materialization.metadata)
        for record in instance.fetch_observations(key, limit=1).records:
            if record.asset_observation is not None:
                found[f"{key.to_user_string()} (observed)"] = entries(record.asset_observation.metadata)
    for run in instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=10000).records:
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            name = f"{evaluation.asset_check_key.name}[{evaluation.partition or ''}] (check)"
            found[name] = {"passed": ["check", evaluation.passed], **entries(evaluation.metadata)}
    return found


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Every difference between two snapshots that is not a matter of place or time."""
    found = [f"only before: {name}" for name in before if name not in after]
    found += [f"only after: {name}" for name in after if name not in before]
    for name in (n for n in before if n in after):
        old, new = before[name], after[name]
        if list(old) != list(new):
            found.append(f"{name}: keys {list(old)} -> {list(new)}")
        for key in (k for k in old if k in new):
            (old_type, old_value), (new_type, new_value) = old[key], new[key]
            if old_type != new_type:
                found.append(f"{name} {key}: type {old_type} -> {new_type}")
            if key in PLACE_OR_TIME or _same(old_value, new_value):
                continue
            if key == "file" and isinstance(old_value, str) and RUN_ID.sub("", old_value) == RUN_ID.sub("", new_value):
                continue
            found.append(f"{name} {key}: {str(old_value)[:60]!r} -> {str(new_value)[:60]!r}")
    return found


def _same(old: Any, new: Any) -> bool:
    both_nan = isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new)
    return old == new or both_nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dagster-home", help="print the snapshot of this instance")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two snapshot files")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(Path(path).read_text(encoding="utf-8")) for path in args.compare)
        found = differences(before, after)
        values = sum(len(entries) for entries in before.values())
        print("\n".join(found) or f"no differences: {len(before)} entries, {values} metadata values")
        return 1 if found else 0
    if not args.dagster_home:
        parser.error("give --dagster-home or --compare")
    json.dump(snapshot(args.dagster_home), sys.stdout, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
