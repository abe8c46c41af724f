"""Loading a pipeline's definitions warns of nothing the plugin chose: the beta and preview Dagster APIs it builds on
by choice (docs/dagster-apis.md) are silenced where it calls them, and only there."""

import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.dagster import TrainingSettings, selection_pipeline_defs

from .test_pipeline import settings

DAGSTER_WARNINGS = (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning, dg.ConfigArgumentWarning)
# Dagster 1.13's component loader turns every stand-alone asset check into a plain AssetsDefinition, and warns of a
# beta parameter of its own when it turns it back, each time the graph resolves: Dagster's, whatever the component.
LOADER = "Parameter `execution_type` of function `AssetsDefinition.__init__` is currently in beta"


def dagster_warnings(load: Callable[[], dg.Definitions]) -> list[str]:
    """The Dagster warnings that loading and resolving the definitions emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load().resolve_asset_graph()
    return [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, DAGSTER_WARNINGS)]


def test_the_factory_loads_without_a_dagster_warning(data_dir: Path) -> None:
    # Every asset and check: shards (the per-shard quality check; shard selections at two budgets), training (the
    # risk check), random seeds.
    pipeline = settings(
        data_dir,
        methods=("zip", "zip_hierarchical", "random"),
        budgets=(30, 60),
        shards=2,
        random_seeds=2,
        training=TrainingSettings(steps=5),
        refresh_cron="0 3 * * *",
    )
    assert dagster_warnings(lambda: selection_pipeline_defs(pipeline)) == []


def test_the_bundled_component_loads_with_no_warning_of_the_plugins_choices() -> None:
    from dagster_project.definitions import defs

    assert [message for message in dagster_warnings(defs) if LOADER not in message] == []


def test_a_users_own_preview_call_still_warns() -> None:
    with pytest.warns(dg.PreviewWarning, match="partitions_def on an AssetCheckSpec"):
        dg.AssetCheckSpec("mine", asset="a", partitions_def=dg.StaticPartitionsDefinition(["x"]))
