"""The YAML component: point it at data files and get the selection pipeline's assets, without code.

In a project's ``defs/<name>/defs.yaml``::

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

Relative ``paths`` and ``storage_path`` are resolved against the folder of the ``defs.yaml``'s project root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from .law import LawSettings
from .pipeline import SelectionPipeline, selection_pipeline_defs
from .storage import EntropyStorage
from .training import TrainingSettings


class SelectionPipelineComponent(dg.Component, dg.Model, dg.Resolvable):
    """Raw data -> pool -> compression scores -> selected subsets (ZIP and baselines), as one asset group."""

    name: str = Field(description="Names the asset group and prefixes the asset keys.")
    paths: list[str] = Field(description="Files, folders or globs of records (JSON, JSONL, parquet, text).")
    methods: list[str] = Field(
        default=["zip", "random", "ratio", "longest", "dedup"],
        description="Partitions of selected_subset: zip, zip_paper, zip_hierarchical (with shards), random, "
        "ratio, longest, dedup.",
    )
    budgets: list[int] = Field(default=[1000], description="One or more budgets (a second partition dimension).")
    budget_unit: str = Field(default="samples", description="samples or bytes")
    k1: int = 10000
    k2: int = 200
    k3: int = 100
    compressor: str = Field(default="zstd", description="zstd, zlib or lzma")
    level: int | None = None
    seed: int = 0
    export_suffix: str = Field(default=".jsonl", description="Format of the exported subsets: .json, .jsonl, .parquet")
    skip_malformed: bool = False
    storage_path: str = Field(default=".entropy_storage", description="Base path of outputs (local or fsspec URL).")
    training: dict[str, Any] | None = Field(
        default=None,
        description="Train on each subset: backend (builtin, pipes, file), steps, seed, command, metrics_path, "
        "eval_samples, eval_paths, score, builtin (trainer settings).",
    )

    automation: bool = Field(
        default=True,
        description="Re-materialize on new data versions (an observation sensor and an automation sensor, running "
        "by default; the daemon runs them: dagster dev, or dagster-daemon run).",
    )
    observe_interval_seconds: int = Field(default=30, description="How often the observation sensor checks files.")
    refresh_cron: str | None = Field(default=None, description="A cron schedule that observes the raw data too.")
    law: dict[str, Any] | None = Field(
        default=None,
        description="The entropy law and its risk check (with training): level, forms, methods, severity (error or "
        "warn), blocking, accepted_versions.",
    )

    shards: int = Field(
        default=1,
        description="Content-hash shards: above 1, compression_scores is partitioned by shard (parallel runs; a data "
        "change rescores only the shards it touched) and zip_hierarchical selects within shards.",
    )
    hierarchical_oversample: float = Field(
        default=2.0, description="zip_hierarchical: each shard keeps this many times its share of the budget."
    )

    def settings(self, root: Path) -> SelectionPipeline:
        """The pipeline settings, relative paths resolved against ``root``."""
        return SelectionPipeline(
            name=self.name,
            paths=[_resolve(root, p) for p in self.paths],
            methods=tuple(self.methods),
            budgets=tuple(self.budgets),
            budget_unit=self.budget_unit,
            k1=self.k1,
            k2=self.k2,
            k3=self.k3,
            compressor=self.compressor,
            level=self.level,
            seed=self.seed,
            export_suffix=self.export_suffix,
            skip_malformed=self.skip_malformed,
            training=None if self.training is None else TrainingSettings(**self.training),
            law=None if self.law is None else LawSettings(**self.law),
            automation=self.automation,
            observe_interval_seconds=self.observe_interval_seconds,
            refresh_cron=self.refresh_cron,
            shards=self.shards,
            hierarchical_oversample=self.hierarchical_oversample,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        root = context.project_root
        storage = EntropyStorage(base_path=_resolve(root, self.storage_path))
        return selection_pipeline_defs(self.settings(root), storage=storage)


def _resolve(root: Path, path: str) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str(root / path)
