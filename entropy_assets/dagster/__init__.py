"""The Dagster plugin: the selection pipeline as assets, from YAML (a component) or Python (a factory)."""

from .component import SelectionPipelineComponent
from .pipeline import METHODS, SelectionPipeline, build_assets, selection_pipeline_defs
from .storage import EntropyStorage

__all__ = [
    "METHODS",
    "EntropyStorage",
    "SelectionPipeline",
    "SelectionPipelineComponent",
    "build_assets",
    "selection_pipeline_defs",
]
