"""Automation of a pipeline: a sensor that observes the raw data, declarative conditions that re-materialize what a
new data version made stale, and an optional refresh schedule.

Dagster's default automation sensor starts stopped, and ``AutomationCondition.eager()`` requests nothing on its
first evaluation; so each pipeline ships its own automation sensor, running by default, and the graph must have
been materialized once (``materialize_all``, or the UI) before changes flow on their own. The daemon runs the
sensors: ``dagster dev`` starts one, production runs ``dagster-daemon run``. A training run waits for a new data
version of its subset (``eager_on_new_data``), so a re-selection that lands on the same samples trains nothing.
"""

import json
from collections.abc import Sequence

import dagster as dg

from entropy_assets.sources import SourceError
from entropy_assets.versions import data_version, files_signature


def eager() -> dg.AutomationCondition:
    """Materialize when an upstream asset has a new version (and nothing upstream is missing or in progress)."""
    return dg.AutomationCondition.eager()


def eager_on_new_data() -> dg.AutomationCondition:
    """``eager()``, but a dependency counts as updated only when its data version changed, not whenever it was
    materialized: a subset re-selected to the same samples (the same version) trains nothing. It also waits for
    the dependency to land rather than running beside it, since its version is known only then."""
    condition = dg.AutomationCondition
    changed = condition.any_deps_match(condition.data_version_changed() & ~condition.executed_with_root_target())
    return (
        condition.in_latest_time_window()
        & (condition.newly_missing() | changed).since_last_handled()
        & ~condition.any_deps_missing()
        & ~condition.any_deps_in_progress()
        & ~condition.in_progress()
    ).with_label("eager_on_new_data")


def eager_past_checks() -> dg.AutomationCondition:
    """``eager()``, but only once every blocking check upstream has passed: a refresh stops at risky data."""
    return dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def observation_sensor(
    name: str, paths: Sequence[str], raw_key: dg.AssetKey, interval_seconds: int
) -> dg.SensorDefinition:
    """Observes ``raw_key`` whenever the content of ``paths`` has changed since the last tick; an unchanged tick
    (or a file touched but not changed) launches nothing. Runs by default."""

    @dg.sensor(
        name=f"{name}_observe_raw_data",
        target=dg.AssetSelection.assets(raw_key),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Observes {raw_key.to_user_string()} when its files change: a new data version re-selects "
        "through the pipeline's automation sensor.",
    )
    def observe(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        previous = json.loads(context.cursor) if context.cursor else {}
        try:
            signature = files_signature(paths)
        except (SourceError, OSError) as error:
            return dg.SkipReason(f"cannot read the raw data: {error}")
        if previous.get("signature") == signature:
            return dg.SkipReason("files unchanged")
        version = data_version(paths)
        cursor = json.dumps({"signature": signature, "version": version})
        if previous.get("version") == version:
            return dg.SensorResult(skip_reason=dg.SkipReason("files touched, content unchanged"), cursor=cursor)
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=version, asset_selection=[raw_key])], cursor=cursor)

    return observe


def automation_sensor(name: str, interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the pipeline's automation conditions. Unlike Dagster's default automation sensor, it runs by
    default."""
    return dg.AutomationConditionSensorDefinition(
        name=f"{name}_automation",
        target=dg.AssetSelection.key_prefixes([name]),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_seconds,
        description=f"Re-materializes pipeline {name!r}'s assets when their upstream has a new data version.",
    )


def refresh_schedule(name: str, cron: str, raw_key: dg.AssetKey, timezone: str = "UTC") -> dg.ScheduleDefinition:
    """Observes the raw data on ``cron``; the automation sensor then refreshes whatever the observation made stale,
    up to the blocking checks."""
    return dg.ScheduleDefinition(
        name=f"{name}_refresh",
        cron_schedule=cron,
        execution_timezone=timezone,
        target=dg.AssetSelection.assets(raw_key),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Observes {raw_key.to_user_string()} on a schedule; stale assets refresh through automation.",
    )
