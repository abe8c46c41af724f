"""Materialize the whole asset graph of this code location, every partition, with Dagster's local storage.

``python -m dagster_project.materialize_all``: observes the raw data, materializes the unpartitioned assets,
then each partition of the partitioned ones, and prints a table of the subsets and where the files and plots
are. Runs go to ``$DAGSTER_HOME`` (``.dagster_home`` in the repository when unset), so ``dagster dev`` shows
them afterwards.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from entropy_assets.comparison import ZIP_METHODS, comparison_text
from entropy_assets.dagster.events import plain_value
from entropy_assets.stages import LawResult, SubsetResult, TrainingResult

ROOT = Path(__file__).resolve().parents[1]


def _instance() -> dg.DagsterInstance:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def materialize_all(instance: dg.DagsterInstance, definitions: dg.Definitions) -> dict[str, dict[str, object]]:
    """Run every asset of ``definitions``; returns each partitioned asset's metadata by ``key[partition]``."""
    assets = list(definitions.assets or [])
    resources = dict(definitions.resources or {})
    graph = definitions.resolve_asset_graph()
    observable = list(graph.observable_asset_keys)
    plain, partitioned, after = [], [], []
    for key in graph.materializable_asset_keys:
        if graph.get(key).partitions_def:
            partitioned.append(key)
        elif any(graph.get(k).partitions_def for k in graph.get_ancestor_asset_keys(key)):
            after.append(key)  # e.g. the entropy law, fitted on every partition's training run
        else:
            plain.append(key)

    def run(selection: list[dg.AssetKey], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets, instance=instance, resources=resources, selection=selection, partition_key=partition_key
        )

    if observable:
        run(observable)
    if plain:
        run(plain)
    subsets: dict[str, dict[str, object]] = {}
    # Assets partitioned alike run together, one run per partition, in dependency order within the run.
    groups: dict[dg.PartitionsDefinition, list[dg.AssetKey]] = {}
    order = {key: index for index, key in enumerate(graph.toposorted_asset_keys)}
    for key in sorted(partitioned, key=order.__getitem__):  # e.g. scores' shards before the subsets
        groups.setdefault(graph.get(key).partitions_def, []).append(key)  # type: ignore[arg-type]
    for partitions, keys in groups.items():
        for partition in partitions.get_partition_keys(dynamic_partitions_store=instance):
            result = run(keys, partition)
            for event in result.get_asset_materialization_events():
                metadata = event.materialization.metadata
                subsets[f"{event.asset_key.to_user_string()}[{partition}]"] = {
                    k: plain_value(v) for k, v in metadata.items()
                }
            for check in result.get_asset_check_evaluations():
                if not check.passed:
                    print(f"check {check.asset_check_key.name} failed on {partition}: {check.description}")
    if after:
        result = run(after)
        for event in result.get_asset_materialization_events():
            metadata = event.materialization.metadata
            subsets[event.asset_key.to_user_string()] = {k: plain_value(v) for k, v in metadata.items()}
        for check in result.get_asset_check_evaluations():
            if not check.passed:
                print(f"check {check.asset_check_key.name} failed: {check.description}")
    return subsets


@dataclass
class Outcome:
    """What the run made, as typed results: each subset and training run by partition, and the law."""

    subsets: dict[str, SubsetResult] = field(default_factory=dict)
    runs: dict[str, TrainingResult] = field(default_factory=dict)
    laws: dict[str, LawResult] = field(default_factory=dict)

    @classmethod
    def of(cls, results: dict[str, dict[str, object]]) -> Outcome:
        """The results of ``materialize_all``'s metadata, by asset and partition."""
        outcome = cls()
        for key, metadata in results.items():
            asset, _, partition = key.rstrip("]").partition("[")
            if asset.endswith("/selected_subset"):
                outcome.subsets[partition] = SubsetResult.from_metadata(metadata)
            elif asset.endswith("/training_run"):
                outcome.runs[partition] = TrainingResult.from_metadata(metadata)
            elif asset.endswith("/entropy_law"):
                outcome.laws[asset] = LawResult.from_metadata(metadata)
        return outcome


def print_table(outcome: Outcome) -> None:
    """One line per subset partition: the subset's size, bytes and ratio R, and its training run's L and Z."""
    print(f"\n{'partition':<16}{'size':>6}{'bytes':>9}{'R (zlib-9)':>12}{'L (1st epoch)':>15}{'Z (eval loss)':>15}")
    for partition, subset in outcome.subsets.items():
        run = outcome.runs.get(partition)
        values = [
            f"{subset.size:>6}",
            f"{subset.bytes:>9}",
            f"{subset.ratio_zlib9:>12}",
            f"{run.first_epoch_loss:>15.4f}" if run else f"{'':>15}",
            f"{run.performance:>15.4f}" if run and run.performance is not None else f"{'':>15}",
        ]
        print(f"{partition:<16}{''.join(values)}")


def print_law(outcome: Outcome) -> None:
    """The entropy law's fit over every training run so far, and where its plots are."""
    for key, law in outcome.laws.items():
        print(f"\n{key}: {law.n_fitted} of {law.n_points} runs in the fit ({law.status})")
        for fit in (law.loss, law.performance, law.plane):
            if fit is not None:
                print(f"  {fit.formula}   (R² {fit.r_squared})")
        print(f"  plots: {Path(law.path).parent}/*.png; notes: {law.notes}")
        if law.comparison_rows:
            print("\n  against random (Z: lower is better)")
            print("\n".join("  " + line for line in comparison_text(law.comparison_rows).splitlines()))
            sentences = [row["sentence"] for row in law.comparison["methods"] if row["method"] in ZIP_METHODS]
            print("\n" + "\n".join(f"  {sentence}" for sentence in sentences or ["No ZIP run to compare."]))


def main() -> int:
    from dagster_project.definitions import defs  # imported after DAGSTER_HOME is set

    # Dagster's own warning when it resolves a component's stand-alone asset check (docs/dagster-apis.md).
    warnings.filterwarnings("ignore", "Parameter `execution_type` of function `AssetsDefinition", dg.BetaWarning)
    instance = _instance()
    started = time.perf_counter()
    outcome = Outcome.of(materialize_all(instance, defs()))
    seconds = time.perf_counter() - started
    print_table(outcome)
    print_law(outcome)
    print(f"\nmaterialized every asset and partition in {seconds:.1f} s; runs stored in {os.environ['DAGSTER_HOME']}")
    for label, stored in (
        ("subsets, provenance and plots", outcome.subsets.values()),
        ("training metrics and loss curves", outcome.runs.values()),
    ):
        folders = {Path(result.path).parents[1] for result in stored}  # <asset>/<partition>/
        if folders:
            print(f"{label}: {', '.join(map(str, sorted(folders)))}")
    ui = f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev -w workspace.yaml"
    print(f"see them in the UI: {ui} (then open http://localhost:3000)")
    print("audit them: .venv/bin/entropy-assets audit run --partition zip (or: law, audit history, audit diff)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
