"""Materialize the whole asset graph of this code location, every partition, with Dagster's local storage.

``python -m dagster_project.materialize_all``: observes the raw data, materializes the unpartitioned assets,
then each partition of the partitioned ones, and prints a table of the subsets and where the files and plots
are. Runs go to ``$DAGSTER_HOME`` (``.dagster_home`` in the repository when unset), so ``dagster dev`` shows
them afterwards.
"""

import os
import sys
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def _instance() -> dg.DagsterInstance:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def materialize_all(instance: dg.DagsterInstance, definitions: dg.Definitions) -> dict[str, dict[str, object]]:
    """Run every asset of ``definitions``; returns each ``selected_subset`` partition's metadata by key."""
    assets = list(definitions.assets or [])
    resources = dict(definitions.resources or {})
    graph = definitions.resolve_asset_graph()
    observable = list(graph.observable_asset_keys)
    plain, partitioned = [], []
    for key in graph.materializable_asset_keys:
        (partitioned if graph.get(key).partitions_def else plain).append(key)

    def run(selection: list[dg.AssetKey], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets, instance=instance, resources=resources, selection=selection, partition_key=partition_key
        )

    if observable:
        run(observable)
    if plain:
        run(plain)
    subsets: dict[str, dict[str, object]] = {}
    for key in partitioned:
        partitions = graph.get(key).partitions_def
        assert partitions is not None
        for partition in partitions.get_partition_keys(dynamic_partitions_store=instance):
            result = run([key], partition)
            for event in result.get_asset_materialization_events():
                metadata = event.materialization.metadata
                subsets[f"{key.to_user_string()}[{partition}]"] = {k: v.value for k, v in metadata.items()}
    return subsets


def main() -> int:
    from dagster_project.definitions import defs  # imported after DAGSTER_HOME is set

    instance = _instance()
    started = time.perf_counter()
    subsets = materialize_all(instance, defs())
    seconds = time.perf_counter() - started
    print(f"\n{'subset':<44}{'size':>6}{'bytes':>9}{'zlib-9 ratio':>14}")
    for key, metadata in subsets.items():
        print(f"{key:<44}{metadata['size']:>6}{metadata['bytes']:>9}{metadata['compression_ratio_zlib9']:>14}")
    first = next(iter(subsets.values()), {})
    print(f"\nmaterialized every asset and partition in {seconds:.1f} s; runs stored in {os.environ['DAGSTER_HOME']}")
    if first:
        print(f"subsets, provenance and plots: {Path(str(first['path'])).parent}")
        print(f"e.g. plot: {first['plot_path']}")
    print("see them in the UI: .venv/bin/dagster dev -w workspace.yaml (then open http://localhost:3000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
