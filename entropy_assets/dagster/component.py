"""The YAML component: point it at data files and get the selection pipeline's assets, without code.

Its fields are ``SelectionPipeline``'s (declared once, there) and ``storage_path``. In a project's
``defs/<name>/defs.yaml``::

    type: entropy_assets.dagster.SelectionPipelineComponent
    attributes:
      name: sample
      paths: [data/sample]
      methods: [zip, random, ratio, longest, dedup]
      budgets: [150]
      k1: 400
      k2: 60
      k3: 30
      storage_path: .entropy_storage
      training: {backend: builtin, steps: 60}     # adds training_run, entropy_law and its risk check
      law: {methods: [zip, random], severity: error}
      refresh_cron: "0 3 * * *"                   # besides the observation sensor (automation: true)
      shards: 16                                  # compression_scores partitioned by content-hash shard
      freshness_hours: 24                         # subsets and the law fail freshness a day after their latest run

Relative ``paths`` and ``storage_path`` are resolved against the project root. ``dg scaffold defs
entropy_assets.dagster.SelectionPipelineComponent NAME`` writes a ``defs.yaml`` that ``dg check defs`` accepts:
the pipeline named after the folder, ``paths`` to fill in (or given with ``--json-params``), the main settings
commented.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster.components.scaffold.scaffold import ScaffoldRequest, scaffold_with
from pydantic import BaseModel, ConfigDict, Field

from .pipeline import selection_pipeline_defs
from .settings import SelectionPipeline
from .storage import EntropyStorage


class ScaffoldParams(BaseModel):
    """What ``dg scaffold defs ... --json-params`` may set: any attribute of the component."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    paths: list[str] | None = None


_COMMENTED = (
    ("methods", "[zip, random, ratio, longest, dedup]", "partitions of selected_subset"),
    ("budgets", "[1000]", "several make a second partition dimension"),
    ("k1", "10000", "ZIP's stages: candidates re-scored, kept, then chosen per round"),
    ("k2", "200", None),
    ("k3", "100", None),
    ("training", "{backend: builtin, steps: 100}", "adds training_run, entropy_law and its risk check"),
    ("shards", "1", "above 1: scores partitioned by content-hash shard; zip_hierarchical"),
    ("refresh_cron", '"0 3 * * *"', "observe the raw data on a schedule too"),
    ("freshness_hours", "168", "subsets and the law older than this fail their freshness policy; null: none"),
)


class SelectionPipelineScaffolder(dg.Scaffolder[ScaffoldParams]):
    """Writes a ``defs.yaml`` that loads: the pipeline named after its folder, and ``paths`` to fill in."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: ScaffoldRequest[ScaffoldParams]) -> None:
        if request.scaffold_format != "yaml":
            dg.scaffold_component(request, {})
            return
        given = request.params.model_dump(exclude_none=True) if request.params is not None else {}
        text = defs_yaml(request.type_name, _pipeline_name(request.target_path.name), given)
        if request.append:
            with open(request.target_path, "a", encoding="utf-8") as handle:
                handle.write("---\n" + text)
        else:
            (request.target_path / "defs.yaml").write_text(text, encoding="utf-8")


def defs_yaml(type_name: str, name: str, given: dict[str, Any]) -> str:
    """A component's ``defs.yaml``: the ``given`` attributes, ``name`` and a ``paths`` placeholder where not given,
    and the main settings, commented, with their defaults."""
    attributes = {"name": name, "paths": [f"data/{name}"], "storage_path": ".entropy_storage", **given}
    lines = [f"type: {type_name}", "", "attributes:"]
    dumped = yaml.safe_dump(attributes, sort_keys=False, default_flow_style=None, allow_unicode=True)
    for line in dumped.splitlines():
        if line.startswith("paths:") and "paths" not in given:
            lines.append(
                "  # Files, folders or globs of records (JSON, JSONL, parquet, text), relative to the project root:"
            )
        lines.append(f"  {line}")
    for key, default, about in _COMMENTED:
        if key not in given:
            lines.append(f"  # {key}: {default}" + (f"  # {about}" if about else ""))
    return "\n".join(lines) + "\n"


def _pipeline_name(folder: str) -> str:
    """A folder's name as a pipeline name: a Python identifier."""
    name = re.sub(r"\W", "_", folder) or "pipeline"
    return name if name.isidentifier() else f"pipeline_{name}"


@scaffold_with(SelectionPipelineScaffolder)
class SelectionPipelineComponent(SelectionPipeline, dg.Component, dg.Resolvable):
    """Raw data -> pool -> compression scores -> selected subsets (ZIP and baselines), and with ``training``,
    training runs and the entropy law, as one asset group."""

    storage_path: str = Field(
        default=".entropy_storage", description="Base path of outputs (a local folder or an fsspec URL)."
    )

    @classmethod
    def model(cls) -> type[BaseModel]:
        """The YAML schema that Dagster derives from the fields, with the descriptions of fields that have defaults
        put back (Dagster 1.13 overwrites them with its field resolver's, which is empty)."""
        model = super().model()
        missing = {
            name: own.description
            for name, own in cls.model_fields.items()
            if own.description and name in model.model_fields and model.model_fields[name].description is None
        }
        if missing:
            for name, description in missing.items():
                model.model_fields[name].description = description
            model.model_rebuild(force=True)
        return model

    def settings(self, root: Path) -> SelectionPipeline:
        """The pipeline settings, relative paths resolved against ``root``."""
        fields = {name: getattr(self, name) for name in SelectionPipeline.model_fields}
        paths = tuple(_resolve(root, p) for p in self.paths)
        by_path = {_resolve(root, path): mapping for path, mapping in self.columns_by_path.items()}
        return SelectionPipeline(**{**fields, "paths": paths, "columns_by_path": by_path})

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        root = context.project_root
        storage = EntropyStorage(base_path=_resolve(root, self.storage_path))
        return selection_pipeline_defs(self.settings(root), storage=storage)


def _resolve(root: Path, path: str) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str(root / path)
