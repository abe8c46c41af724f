"""The Dagster plugin: the selection pipeline as assets, from YAML (a component) or Python (a factory).

Everything a user configures from Python is here: ``SelectionPipeline`` with its ``TrainingSettings`` and
``LawSettings``, the ``EntropyStorage`` resource, ``selection_pipeline_defs``, and the executors by name. Code
outside the plugin (the command line, a notebook) reads what an instance recorded through ``history``.
"""

from entropy_assets.selection.methods import METHODS
from entropy_assets.stages import LawSettings, TrainingSettings

from .component import SelectionPipelineComponent
from .executors import EXECUTORS, executor_from_env, executor_named
from .law import law_points
from .pipeline import build_assets, selection_pipeline_defs
from .settings import SelectionPipeline
from .storage import EntropyStorage

__all__ = [
    "EXECUTORS",
    "METHODS",
    "EntropyStorage",
    "LawSettings",
    "SelectionPipeline",
    "SelectionPipelineComponent",
    "TrainingSettings",
    "build_assets",
    "executor_from_env",
    "executor_named",
    "law_points",
    "selection_pipeline_defs",
]
