"""The code location's definitions: every component under ``defs/``, run by the executor that
``ENTROPY_ASSETS_EXECUTOR`` names (``multiprocess``, ``in_process``, ``dask``, ``celery``, ``k8s``; Dagster's
default, multiprocess, when unset)."""

from pathlib import Path

import dagster as dg

from entropy_assets.dagster.executors import executor_from_env


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    executor = executor_from_env()
    if executor is None:
        return loaded
    return dg.Definitions.merge(loaded, dg.Definitions(executor=executor))
