"""The Dagster plugin: the selection pipeline as assets, from YAML (a component) or Python (a factory)."""

from .component import SelectionPipelineComponent
from .law import LawSettings, law_points
from .pipeline import METHODS, SelectionPipeline, build_assets, selection_pipeline_defs
from .storage import EntropyStorage

__all__ = [
    "METHODS",
    "EntropyStorage",
    "LawSettings",
    "SelectionPipeline",
    "SelectionPipelineComponent",
    "build_assets",
    "law_points",
    "selection_pipeline_defs",
]
