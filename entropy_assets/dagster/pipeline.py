"""The asset graph of one selection pipeline, as Definitions: raw data -> pool -> compression scores -> selected
subsets (-> training runs -> the entropy law and its risk check), with the sensors and schedule that keep it fresh.

``selection_pipeline_defs(settings)`` is the Python factory; the YAML component builds the same definitions
from the same settings.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from entropy_assets.stages import LawSettings

from .assets import pool_asset, raw_data_asset, scores_asset, shard_selection_asset, subset_asset
from .automation import automation_sensor, eager, eager_on_new_data, observation_sensor, refresh_schedule
from .law import law_defs
from .settings import SelectionPipeline
from .shards import shard_sensor
from .storage import EntropyStorage
from .training import training_asset

_SHARED_STORAGE: dict[str, EntropyStorage] = {}
_PIPES_CLIENT = dg.PipesSubprocessClient()


def selection_pipeline_defs(settings: SelectionPipeline, *, storage: EntropyStorage | None = None) -> dg.Definitions:
    """The assets of ``settings`` as Definitions, with the storage resource (a local folder by default).

    Several pipelines load side by side (a project's ``defs/`` with a folder each) when they share a storage base
    path: Dagster merges definitions only where each resource key holds the very same object, so every pipeline of
    a process gets the one ``EntropyStorage`` of its base path, and one Pipes client."""
    storage = storage or EntropyStorage()
    storage.storage()  # refuses a credential in the base path now; the settings' own are refused by the settings
    resources: dict[str, Any] = {"entropy_storage": _SHARED_STORAGE.setdefault(storage.base_path, storage)}
    if settings.training is not None:
        resources["pipes_subprocess_client"] = _PIPES_CLIENT
    sensors: list[Any] = []
    schedules: list[Any] = []
    raw_key = settings.key("raw_data")
    if settings.automation:
        interval = settings.observe_interval_seconds
        sensors = [
            observation_sensor(settings.name, settings.paths, raw_key, interval),
            automation_sensor(settings.name, interval),
        ]
        if settings.shards > 1:
            sensors.append(shard_sensor(settings))
    if settings.refresh_cron:
        schedules.append(refresh_schedule(settings.name, settings.refresh_cron, raw_key))
    return dg.Definitions(assets=build_assets(settings), resources=resources, sensors=sensors, schedules=schedules)


def build_assets(settings: SelectionPipeline) -> list[Any]:
    """The pipeline's source asset, assets and asset checks, keys prefixed and grouped by the pipeline's name."""
    common: dict[str, Any] = {"key_prefix": [settings.name], "group_name": settings.name, "tags": dict(settings.tags)}
    if settings.automation:
        common["automation_condition"] = eager()
    # Sharded, a sensor requests the shards a new pool changed, then the subsets (see shards.py).
    sensor_driven = {**common, "automation_condition": None} if settings.shards > 1 else common
    assets: list[Any] = [
        raw_data_asset(settings),
        pool_asset(settings, common),
        scores_asset(settings, sensor_driven),
        *([shard_selection_asset(settings, sensor_driven)] if settings.selects_shards else []),
        subset_asset(settings, sensor_driven),
    ]
    if settings.training is not None:
        # A training run follows a new version of its subset, not every re-selection: the same samples train once.
        trained = {**common, "automation_condition": eager_on_new_data()} if settings.automation else common
        assets.append(training_asset(settings, settings.training, trained))
        assets.extend(law_defs(settings, settings.law or LawSettings(), common))
    return assets
