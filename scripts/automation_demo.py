"""Re-selection with nobody clicking: start ``dagster dev`` on a temporary home, edit a data file, and time the
re-selection that follows on its own.

``python scripts/automation_demo.py [--port 3313] [--timeout 600] [--shards N]``

The pipeline (ZIP and random on the bundled sample, 100 samples, 20 training steps each) is materialized once
first: ``AutomationCondition.eager()`` requests nothing on its first evaluation, so automation starts from a
materialized graph. Then ``dagster dev`` runs the daemon, whose sensors (running by default) observe the raw data
every 5 s and evaluate the automation conditions. The script appends records to a data file and polls the
instance until every subset partition has been re-selected (warm, from its previous version) and, where a subset's
content changed, retrained and refitted; it prints when each asset's new version arrived, and each subset's version
and churn. With ``--shards``,
the pipeline is sharded (ZIP is then ``zip_hierarchical``) and the script also prints which shards were rescored.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from entropy_assets.dagster.events import metadata_values
from entropy_assets.stages import ScoresResult, SubsetResult

ROOT = Path(__file__).resolve().parents[1]
DEFS = """
from entropy_assets.dagster import EntropyStorage, SelectionPipeline, TrainingSettings, selection_pipeline_defs

defs = selection_pipeline_defs(
    SelectionPipeline(
        name="demo", paths=[{data!r}], methods=({zip!r}, "random"), budgets=(100,), k1=300, k2=40, k3=20,
        training=TrainingSettings(backend="builtin", steps=20, eval_samples=50), observe_interval_seconds=5,
        shards={shards},
    ),
    storage=EntropyStorage(base_path={store!r}),
)
"""
ASSETS = ("raw_data", "pool", "compression_scores", "selected_subset", "training_run", "entropy_law")


def _latest(instance: object, name: str) -> float:
    """When ``demo/<name>`` last got a new version: the newest observation or materialization, across partitions."""
    import dagster as dg

    key = dg.AssetKey(["demo", name])
    fetch = instance.fetch_observations if name == "raw_data" else instance.fetch_materializations  # type: ignore[attr-defined]
    records = fetch(key, limit=1).records
    return records[0].timestamp if records else 0.0


def _subsets(instance: object, after: float = 0.0) -> dict[str, SubsetResult]:
    """The latest subset of each partition (materialized after ``after``, a time stamp)."""
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetKey(["demo", "selected_subset"]), limit=20).records  # type: ignore[attr-defined]
    latest: dict[str, SubsetResult] = {}
    for record in records:  # newest first
        if record.timestamp > after and record.partition_key not in latest:
            latest[record.partition_key] = SubsetResult.from_metadata(metadata_values(record))
    return latest


def _trained(instance: object, partitions: list[str], after: float) -> bool:
    """Whether every partition in ``partitions`` has a training run materialized after ``after``."""
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetKey(["demo", "training_run"]), limit=20).records  # type: ignore[attr-defined]
    return set(partitions) <= {record.partition_key for record in records if record.timestamp > after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3313)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the re-selection")
    parser.add_argument("--shards", type=int, default=1, help="content-hash shards of the scores (1: unsharded)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="entropy_automation_"))
    home, data = folder / "home", folder / "data"
    home.mkdir()
    shutil.copytree(ROOT / "dagster_project" / "data" / "sample", data, ignore=shutil.ignore_patterns("*.md"))
    method = "zip_hierarchical" if args.shards > 1 else "zip"
    defs_code = DEFS.format(data=str(data), store=str(folder / "store"), zip=method, shards=args.shards)
    (folder / "defs.py").write_text(defs_code, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)

    import dagster as dg

    sys.path.insert(0, str(folder))
    sys.path.insert(0, str(ROOT))
    from defs import defs  # type: ignore[import-not-found]

    from dagster_project.materialize_all import materialize_all

    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    materialize_all(instance, defs)
    print(f"materialized the graph once in {time.perf_counter() - started:.0f} s (home: {home})")

    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-f", str(folder / "defs.py"), "-p", str(args.port)],
        cwd=folder,
        stdout=(folder / "dagster_dev.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Let the sensors tick once on the unchanged data: the observation sees the same version, nothing runs.
        time.sleep(45)
        before = {name: _latest(instance, name) for name in ASSETS}
        old_subsets = _subsets(instance)
        edited = time.time()
        target = next(data.glob("*.jsonl"))
        with target.open("a", encoding="utf-8") as handle:
            for i in range(20):
                handle.write(json.dumps({"text": f"Document {i}, added while dagster dev was running."}) + "\n")
        print(f"edited {target.name} (20 records appended); waiting for the re-selection ...")
        arrived: dict[str, float] = {}
        expected = list(ASSETS[:4])  # training and the law follow only where a subset's content changed
        while time.time() - edited < args.timeout:
            for name in ASSETS:
                if name not in arrived and _latest(instance, name) > before[name]:
                    arrived[name] = time.time() - edited
                    print(f"  {name:<20} new version after {arrived[name]:6.1f} s")
            new_subsets = _subsets(instance, after=edited)
            if len(new_subsets) == len(old_subsets) and "selected_subset" in arrived:
                changed = [key for key, subset in new_subsets.items() if subset.version != old_subsets[key].version]
                expected = list(ASSETS) if changed else expected
                if all(name in arrived for name in expected) and _trained(instance, changed, edited):
                    break
            time.sleep(2)
        else:
            print(f"timed out: no new version of {sorted(set(expected) - set(arrived))}; see {folder}/dagster_dev.log")
            return 1
        for key, subset in sorted(new_subsets.items()):
            old, churn = old_subsets[key], subset.churn
            unchanged = " (unchanged: nothing retrains)" if subset.version == old.version else ""
            counts = (
                f"kept {churn.kept}, added {churn.added}, removed {churn.removed}: "
                + (", ".join(f"{why} {count}" for why, count in sorted(churn.by_reason.items())) or "none")
                if churn is not None
                else "none recorded"
            )
            print(f"  subset {key}: {subset.reselect}, {old.version} -> {subset.version}{unchanged}; churn {counts}")
        print(
            f"new subsets after {arrived['selected_subset']:.1f} s; retrained {', '.join(changed) or 'nothing'}; "
            f"the hands-off refresh took {max(arrived.values()):.1f} s"
        )
        if args.shards > 1:
            scores = instance.fetch_materializations(dg.AssetKey(["demo", "compression_scores"]), limit=100).records
            runs = {
                r.partition_key: ScoresResult.from_metadata(metadata_values(r)).rescored
                for r in scores
                if r.timestamp > edited
            }
            print(f"shards run again, with samples rescored: {runs or 'none'} (of {args.shards} shards)")
        return 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
