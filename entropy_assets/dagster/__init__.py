"""The Dagster plugin: the selection pipeline as assets, from YAML (a component) or Python (a factory)."""

from .component import SelectionPipelineComponent
from .executors import EXECUTORS, executor_from_env, executor_named
from .law import LawSettings, law_points
from .pipeline import METHODS, SelectionPipeline, build_assets, selection_pipeline_defs
from .storage import EntropyStorage

__all__ = [
    "EXECUTORS",
    "METHODS",
    "EntropyStorage",
    "LawSettings",
    "SelectionPipeline",
    "SelectionPipelineComponent",
    "build_assets",
    "executor_from_env",
    "executor_named",
    "law_points",
    "selection_pipeline_defs",
]
