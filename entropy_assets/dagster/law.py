"""The ``entropy_law`` asset and the ``entropy_law_risk`` check: the law fitted on every training run in the event
log, and each new run's (R, L) checked against the fit of earlier data versions."""

from typing import Any

import dagster as dg
from dagster import AssetCheckExecutionContext, AssetExecutionContext

from entropy_assets.comparison import MethodComparison, compare_methods
from entropy_assets.entropy_law import LawPoint
from entropy_assets.stages import (
    LawSettings,
    TrainingResult,
    assess_risk,
    fit_entropy_law,
    latest_points,
)

from .automation import eager_past_checks
from .events import all_results, dagster_metadata, latest_record, materialized
from .previews import deliberate_previews
from .settings import SelectionPipeline
from .storage import EntropyStorage


def law_points(instance: dg.DagsterInstance, training_key: dg.AssetKey) -> list[LawPoint]:
    """Every training run recorded in the event log as a point, oldest first; a partition materialized again on
    the same data version and subset counts once, with its latest values."""
    runs = all_results(instance, training_key, TrainingResult)
    return latest_points(result.point(record.timestamp, record.run_id) for record, result in runs)


@deliberate_previews()
def law_defs(
    settings: SelectionPipeline, law: LawSettings, common: dict[str, Any]
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The ``entropy_law`` asset (with ``random_seeds`` above 1, its own check of whether ZIP beats random) and the
    risk check on ``training_run``."""
    training_key = settings.key("training_run")
    # Under automation the law waits for every blocking check upstream: a refresh stops at risky data.
    law_common = {**common, "automation_condition": eager_past_checks()} if settings.automation else common

    @dg.asset(
        name="entropy_law",
        deps=[training_key],
        code_version="entropy-law-1",
        kinds={"scipy", "matplotlib"},
        check_specs=[zip_beats_random_spec(settings.key("entropy_law"))] if settings.random_seeds >= 2 else None,
        freshness_policy=settings.freshness_policy,
        description="The entropy law fitted on every training run in the event log, earlier data versions "
        "included: L as a function of R (linear, exponential and power forms compared by leave-one-out error), "
        "Z as a function of R and of (R, L), with confidence intervals, R squared and plots.",
        **law_common,
    )
    def entropy_law(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        workspace = entropy_storage.workspace(settings.name, context.log)
        points = law_points(context.instance, training_key)
        comparison = compare_methods(points, level=law.level)
        checks = [zip_beats_random_result(comparison)] if settings.random_seeds >= 2 else []
        return materialized(fit_entropy_law(workspace, points, law), checks=checks)

    @dg.asset_check(
        asset=training_key,
        name="entropy_law_risk",
        blocking=law.blocking,
        partitions_def=settings.partitions,
        description="Checks each training run's (R, L) against the prediction band of the entropy law fitted on "
        "earlier data versions. A point outside the band fails: the data update is a performance risk.",
    )
    def entropy_law_risk(context: AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return risk_check_result(context.instance, training_key, context.partition_key, law)

    return [entropy_law, entropy_law_risk]


def zip_beats_random_spec(law_key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "zip_beats_random",
        asset=law_key,
        description="Checks that every ZIP method's held-out loss Z is below random's, at every budget, on the "
        "latest data version: the interval of the difference (over random's subsets and the training seeds) must "
        "lie below zero. Its message says, per method and budget, ZIP beats random, random beats ZIP, or not "
        "resolved with the runs made and about how many would resolve it. Evaluated in the law's own step.",
    )


def zip_beats_random_result(comparison: MethodComparison) -> dg.AssetCheckResult:
    """Whether every ZIP method beats random; a warning, with one sentence per method and budget, when not."""
    verdicts = comparison.zip_verdicts()
    return dg.AssetCheckResult(
        check_name="zip_beats_random",
        passed=all(row.beats_random for row in verdicts),
        severity=dg.AssetCheckSeverity.WARN,
        description=comparison.summary(),
        metadata={f"{row.method}_{row.budget}": row.sentence() for row in verdicts},
    )


def risk_check_result(
    instance: dg.DagsterInstance, training_key: dg.AssetKey, partition: str | None, law: LawSettings
) -> dg.AssetCheckResult:
    """The risk check of the latest run of ``partition``: its (R, L) against the fit of every earlier data
    version's runs."""
    found = latest_record(instance, training_key, TrainingResult, partition)
    point = found[1].point(found[0].timestamp, found[0].run_id) if found is not None else None
    result = assess_risk(point, law_points(instance, training_key), law)
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=result.summary,
        metadata=dagster_metadata(result.to_metadata()),
    )
