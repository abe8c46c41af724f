"""The freshness policy of subsets and the law: a window set where the pipeline is configured (``freshness_hours``),
and a subset that nothing re-selected after its raw data changed fails its freshness policy once the window has
passed. Dagster 1.13 marks an asset unsynced only when one of its own dependencies has a new data version: with
nothing run after the raw data changed only the pool is unsynced, and the subset's freshness policy is what flags
it; with the pool refreshed and the subset not, the subset is unsynced at once.

Dagster's freshness daemon (run by ``dagster dev`` and ``dagster-daemon``) evaluates each policy with its
evaluator; the test calls that evaluator and Dagster's stale-status resolver directly, at times it sets, against a
real instance (internal API of the pinned dagster 1.13.27)."""

import asyncio
import datetime
import json
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.definitions.freshness_evaluator import TimeWindowFreshnessPolicyEvaluator
from dagster._core.loader import LoadingContextForTest
from dagster._core.test_utils import freeze_time

from entropy_assets.dagster import SelectionPipelineComponent, TrainingSettings, selection_pipeline_defs

from .test_pipeline import POOL, RAW, SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
LAW = dg.AssetKey(["t", "entropy_law"])


def test_subsets_and_the_law_carry_the_window_set_where_the_pipeline_is_configured(
    data_dir: Path, tmp_path: Path
) -> None:
    training = TrainingSettings(backend="file", metrics_path="runs/{method}_{budget}.json")
    graph = selection_pipeline_defs(settings(data_dir, training=training, freshness_hours=2)).resolve_asset_graph()
    policies = {key.path[-1]: graph.get(key).freshness_policy for key in graph.get_all_asset_keys()}
    two_hours = dg.FreshnessPolicy.time_window(fail_window=datetime.timedelta(hours=2))
    assert policies == {
        "raw_data": None,
        "pool": None,
        "compression_scores": None,
        "selected_subset": two_hours,
        "training_run": None,
        "entropy_law": two_hours,
    }
    week = dg.FreshnessPolicy.time_window(fail_window=datetime.timedelta(days=7))
    assert settings(data_dir).freshness_policy == week  # the default
    assert settings(data_dir, freshness_hours=None).freshness_policy is None
    component = SelectionPipelineComponent.model_validate({"name": "t", "paths": ["data"], "freshness_hours": 0.5})
    assert component.settings(tmp_path).freshness_policy == dg.FreshnessPolicy.time_window(
        fail_window=datetime.timedelta(minutes=30)
    )
    with pytest.raises(ValueError, match="freshness_hours must be at least 1/60"):
        settings(data_dir, freshness_hours=0.01)


def freshness(instance: dg.DagsterInstance, graph: Graph, at: float) -> FreshnessState:
    """The subset's freshness state as Dagster's freshness daemon would evaluate it at time ``at``."""
    node = graph.defs.resolve_asset_graph().get(SUBSET)
    with freeze_time(at):
        return asyncio.run(
            TimeWindowFreshnessPolicyEvaluator().evaluate_freshness(LoadingContextForTest(instance), node)
        )


def test_a_subset_not_reselected_after_new_data_is_stale_and_fails_freshness_after_its_window(
    data_dir: Path, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir, freshness_hours=2), tmp_path / "store", instance)
        assert freshness(instance, graph, datetime.datetime.now().timestamp()) == FreshnessState.UNKNOWN  # never made
        graph.refresh()
        graph.run([SUBSET], "zip")
        selected = instance.get_latest_materialization_event(SUBSET)
        assert selected is not None

        def status(key: dg.AssetKey, partition: str | None = None) -> StaleStatus:
            asset_graph = graph.defs.resolve_asset_graph()
            resolver = CachingStaleStatusResolver(instance, asset_graph, LoadingContextForTest(instance))
            return resolver.get_status(key, partition)

        assert status(SUBSET, "zip") == StaleStatus.FRESH
        with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"text": "A document that arrived after the subset was selected."}) + "\n")
        graph.run([RAW])  # observed: a new data version, and nothing ran after it (the daemon is down, say)
        # Dagster's data versions mark only the pool: a dependency counts when its own version changed.
        assert (status(POOL), status(SUBSET, "zip")) == (StaleStatus.STALE, StaleStatus.FRESH)
        # The freshness policy says it: the subset passes within its window, and fails once the window has passed.
        hour, window = 3600.0, 2 * 3600.0
        assert freshness(instance, graph, selected.timestamp + hour) == FreshnessState.PASS
        assert freshness(instance, graph, selected.timestamp + window + 60) == FreshnessState.FAIL
        # With the pool and scores refreshed but the subset not re-selected (its run failed, a check blocked it), the
        # subset itself is unsynced.
        graph.refresh()
        assert (status(POOL), status(SUBSET, "zip")) == (StaleStatus.FRESH, StaleStatus.STALE)
