"""Automation: a changed raw file re-selects exactly the assets downstream of it; an unchanged one requests nothing."""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.dagster import TrainingSettings
from entropy_assets.dagster.events import latest, materializations
from entropy_assets.stages import PoolResult, SubsetResult

from .test_pipeline import POOL, RAW, SCORES, SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
LAW = dg.AssetKey(["t", "entropy_law"])
METHODS = ("zip", "random", "dedup")


def trained_graph(data_dir: Path, tmp_path: Path, instance: dg.DagsterInstance) -> Graph:
    """Every asset and partition materialized once, training from metrics files."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for method in METHODS:
        (metrics / f"{method}_60.json").write_text(json.dumps({"first_epoch_loss": 3.0, "eval_loss": 2.5}))
    training = TrainingSettings(backend="file", metrics_path=str(metrics / "{method}_{budget}.json"), eval_samples=0)
    graph = Graph(settings(data_dir, training=training), tmp_path / "store", instance)
    graph.refresh()
    for method in METHODS:
        graph.run([SUBSET, TRAINING], method)
    graph.run([LAW])
    return graph


def requested(result: dg.AutomationResult) -> dict[str, int]:
    keys = (POOL, SCORES, SUBSET, TRAINING, LAW, RAW)
    return {key.path[-1]: result.get_num_requested(key) for key in keys if result.get_num_requested(key)}


def test_a_changed_file_requests_exactly_the_downstream_assets_and_an_unchanged_one_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        graph = trained_graph(data_dir, tmp_path, instance)
        first = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance)
        assert first.total_requested == 0  # eager() never requests on its first evaluation

        graph.run([RAW])  # observed again, unchanged
        unchanged = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=first.cursor)
        assert unchanged.total_requested == 0

        with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"text": "A document added after the first selection."}) + "\n")
        graph.run([RAW])
        changed = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=unchanged.cursor)
        # Each tick requests what can run next: assets partitioned differently from their parents wait for them.
        assert requested(changed) == {"pool": 1, "compression_scores": 1}
        graph.refresh()

        second = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=changed.cursor)
        assert requested(second) == {"selected_subset": 3}  # training waits for the subsets' new versions
        assert second.get_requested_partitions(SUBSET) == set(METHODS)
        before = {method: subset_version(instance, method) for method in METHODS}
        for method in METHODS:
            graph.run([SUBSET], method)
        moved = {method for method in METHODS if subset_version(instance, method) != before[method]}
        assert "zip" in moved  # the new document is the most informative: ZIP takes it in

        third = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=second.cursor)
        assert requested(third) == {"training_run": len(moved)}
        assert third.get_requested_partitions(TRAINING) == moved
        for method in moved:
            graph.run([TRAINING], method)
        fourth = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=third.cursor)
        assert requested(fourth) == {"entropy_law": 1}  # after every training run's blocking check passed
        graph.run([LAW])
        quiet = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=fourth.cursor)
        assert quiet.total_requested == 0


def subset_version(instance: dg.DagsterInstance, method: str) -> str:
    subset = latest(instance, SUBSET, SubsetResult, method)
    assert subset is not None
    return subset.version


def test_a_reselection_that_lands_on_the_same_samples_makes_no_version_and_trains_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    """A new data version whose only change is a copy of a document already in the pool: every subset is selected
    again (warm), lands on the same samples, and keeps its version; no training run is requested."""
    with dg.instance_for_test() as instance:
        graph = trained_graph(data_dir, tmp_path, instance)
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance)
        before = {method: subset_version(instance, method) for method in METHODS}
        runs = {method: len(materializations(instance, TRAINING, method)) for method in METHODS}

        target = data_dir / "pretrain_c4_demo.jsonl"
        first_line = target.read_text(encoding="utf-8").splitlines()[0]
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(first_line + "\n")
        graph.refresh()
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"selected_subset": 3}
        pool = latest(instance, POOL, PoolResult)
        for method in METHODS:
            subset = graph.metadata(graph.run([SUBSET], method), SUBSET)
            assert subset["pool_version"] == pool.version and subset["reselect"] == "warm"  # type: ignore[union-attr]
            assert subset["version"] == before[method] and subset["churn_added"] == 0
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0
        assert {method: len(materializations(instance, TRAINING, method)) for method in METHODS} == runs


def test_the_observation_sensor_observes_only_when_content_changed(data_dir: Path, tmp_path: Path) -> None:
    graph = Graph(settings(data_dir), tmp_path / "store", dg.DagsterInstance.ephemeral())
    sensor = graph.defs.get_sensor_def("t_observe_raw_data")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert graph.defs.get_sensor_def("t_automation").default_status == dg.DefaultSensorStatus.RUNNING

    first = sensor(dg.build_sensor_context())
    (request,) = first.run_requests
    assert request.asset_selection == [RAW]

    assert isinstance(sensor(dg.build_sensor_context(cursor=first.cursor)), dg.SkipReason)

    target = data_dir / "pretrain_c4_demo.jsonl"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))  # touched, same bytes
    touched = sensor(dg.build_sensor_context(cursor=first.cursor))
    assert not touched.run_requests and touched.cursor != first.cursor

    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "new"}) + "\n")
    changed = sensor(dg.build_sensor_context(cursor=touched.cursor))
    (request,) = changed.run_requests
    assert request.run_key != first.run_requests[0].run_key


def test_a_refresh_schedule_observes_the_raw_data(data_dir: Path, tmp_path: Path) -> None:
    graph = Graph(settings(data_dir, refresh_cron="0 3 * * *"), tmp_path / "store", dg.DagsterInstance.ephemeral())
    schedule = graph.defs.get_schedule_def("t_refresh")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with pytest.raises(ValueError, match="refresh_cron"):
        settings(data_dir, refresh_cron="every night")
    without = Graph(settings(data_dir, automation=False), tmp_path / "store", dg.DagsterInstance.ephemeral())
    assert not list(without.defs.sensors or [])
    assert without.defs.resolve_asset_graph().get(POOL).automation_condition is None
