"""What a Dagster instance recorded, read for the command line and for notebooks: the one entry into the plugin for
code outside it.

    instance = history.open_instance(home)
    history.pipelines(instance)                        # pipelines with a subset
    history.audit_run(instance, "sample", partition="zip")
    history.diff_subsets(instance, "sample", "zip")    # the last two versions of a subset
    history.law_history(instance, "sample")            # R and L by data version
    history.law_points(instance, "sample"), history.fitted_methods(instance, "sample")
    history.plan_prune(instance, "sample", keep=2)     # then ``stages.retention.prune(plan)``

Each reads results from the event log and hands them to a plain function of ``entropy_assets.stages`` (``audit``,
``retention``, ``law``), which does the work on the versioned files they name.
"""

import dagster as dg

from entropy_assets.entropy_law import LawPoint
from entropy_assets.stages import LawResult, RawDataResult, SubsetResult, TrainingResult, retention
from entropy_assets.stages.audit import Audit, AuditError, diff_audit, history_audit, run_audit
from entropy_assets.stages.retention import VERSIONED_ASSETS, PrunePlan

from . import law
from .events import all_results, latest, observed

__all__ = [
    "Audit",
    "AuditError",
    "PrunePlan",
    "audit_run",
    "diff_subsets",
    "fitted_methods",
    "law_history",
    "law_points",
    "open_instance",
    "pipelines",
    "plan_prune",
    "training_pipelines",
]


def open_instance(home: str) -> dg.DagsterInstance:
    """The Dagster instance whose home folder is ``home``."""
    return dg.DagsterInstance.from_config(str(home))


def pipelines(instance: dg.DagsterInstance) -> list[str]:
    """Pipelines with a training run or a subset in this instance."""
    names = {k.path[0] for k in instance.get_asset_keys() if len(k.path) == 2 and k.path[1] == "selected_subset"}
    return sorted(names)


def training_pipelines(instance: dg.DagsterInstance) -> list[str]:
    """Pipelines with a ``training_run`` asset in this instance, in the order of their asset keys."""
    keys = sorted(
        (k for k in instance.get_asset_keys() if k.path[-1] == "training_run" and len(k.path) == 2),
        key=lambda k: k.to_user_string(),
    )
    return [key.path[0] for key in keys]


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
    raw = observed(instance, dg.AssetKey([pipeline, "raw_data"]), RawDataResult, run.raw_data_version)
    return run_audit(
        pipeline, run, raw, run_id=record.run_id, partition=record.partition_key, timestamp=record.timestamp
    )


def diff_subsets(
    instance: dg.DagsterInstance, pipeline: str, partition: str, *, old: str | None = None, new: str | None = None
) -> Audit:
    """Samples added to and removed from a subset between two of its versions (by default the last two), and why."""
    versions: dict[str, SubsetResult] = {}
    for _record, subset in all_results(instance, dg.AssetKey([pipeline, "selected_subset"]), SubsetResult, partition):
        versions.pop(subset.version, None)
        versions[subset.version] = subset  # ordered by their latest materialization
    return diff_audit(pipeline, partition, versions, old=old, new=new)


def law_history(instance: dg.DagsterInstance, pipeline: str) -> Audit:
    """Compression ratio R and first-epoch loss L of every training run, by data version in time order."""
    return history_audit(pipeline, law_points(instance, pipeline))


def law_points(instance: dg.DagsterInstance, pipeline: str) -> list[LawPoint]:
    """Every training run of ``pipeline`` as a point of the entropy law, oldest first (``law.law_points``)."""
    return law.law_points(instance, dg.AssetKey([pipeline, "training_run"]))


def fitted_methods(instance: dg.DagsterInstance, pipeline: str) -> list[str]:
    """The methods the pipeline's last ``entropy_law`` fitted (its ``law.methods`` setting); all (empty) when
    unknown."""
    fitted = latest(instance, dg.AssetKey([pipeline, "entropy_law"]), LawResult)
    return list(fitted.fit_methods) if fitted is not None else []


def plan_prune(instance: dg.DagsterInstance, pipeline: str, keep: int) -> PrunePlan:
    """What ``retention.prune`` would delete of ``pipeline``'s outputs, keeping the ``keep`` latest versions of
    each (``retention.plan_prune``, over every versioned asset's materializations)."""
    outputs = {
        name: [
            (record.partition_key, result)
            for record, result in all_results(instance, dg.AssetKey([pipeline, name]), result_type)
        ]
        for name, result_type in VERSIONED_ASSETS.items()
    }
    return retention.plan_prune(outputs, pipeline, keep)
