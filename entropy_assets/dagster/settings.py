"""The settings of one selection pipeline, declared once: the Python factory takes them as they are, and the YAML
component is these same fields plus where the storage is (its schema and documentation derive from here)."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from typing import Literal

import dagster as dg
from pydantic import Field, model_validator

from entropy_assets.comparison import RANDOM, SEED_SUFFIX, is_random
from entropy_assets.compression import make_compressor
from entropy_assets.credentials import refuse_inline_credentials
from entropy_assets.quality import QualitySettings
from entropy_assets.records import ColumnMapping, RecordFormat
from entropy_assets.scoring import shard_keys
from entropy_assets.selection.methods import METHODS, SelectionConfig, SelectionOptions, method_config
from entropy_assets.selection.stratified import Stratify
from entropy_assets.sources import AS_INPUT, WRITABLE_SUFFIXES, SourceColumns
from entropy_assets.stages import LawSettings, ScoringSettings, SubsetSettings, TrainingSettings
from entropy_assets.stages.settings import Settings

from .automation import refresh_schedule

MAX_SHARDS = 4096
DEFAULT_FRESHNESS_HOURS = 168.0
"""A week: a subset or law that old, on a pipeline that observes its data every few seconds and re-selects on every
change, means that its data stopped changing or its refreshes stopped (a blocking check, the daemon not running).
A shorter default would flag every quiet day of a pipeline whose data arrives now and then."""


class SelectionPipeline(Settings):
    """Settings of one pipeline: where its raw data is, how to select from it, how each subset is trained and how
    the entropy law judges new data."""

    name: str = Field(description="Names the asset group and prefixes the asset keys (a Python identifier).")
    paths: tuple[str, ...] = Field(
        description="Files, folders or globs of records (JSON, JSONL, parquet, text, gzipped or not), saved datasets "
        "or dataset names."
    )
    methods: tuple[str, ...] = Field(
        default=("zip", "random", "ratio", "longest", "dedup"),
        description=f"Partitions of selected_subset, among {', '.join(METHODS)} (zip_hierarchical needs shards).",
    )
    budgets: tuple[int, ...] = Field(
        default=(1000,), description="One or more budgets; several become a second partition dimension."
    )
    budget_unit: Literal["samples", "bytes"] = Field(default="samples", description="What a budget counts.")
    k1: int = Field(default=10000, description="ZIP stage 1: candidates re-scored against the chosen set per round.")
    k2: int = Field(default=200, description="ZIP stage 2: candidates kept for stage 3.")
    k3: int = Field(default=100, description="ZIP stage 3: samples chosen per round, one at a time.")
    compressor: str = Field(
        default="zstd", description="zstd, zlib or lzma: the scores, ZIP's default mode and the ratio baseline."
    )
    level: int | None = Field(default=None, description="Compression level (default: zstd 3, zlib 9, lzma 6).")
    seed: int = Field(default=0, description="Seeds random draws and breaks exact ties.")
    reselect: Literal["warm", "full"] = Field(
        default="warm",
        description="How a refresh re-selects a subset: warm starts from its previous version (same settings), "
        "keeping what is still in the pool, filling the freed budget and letting new samples in; full selects "
        "from scratch.",
    )
    full_every: int | None = Field(
        default=None,
        description="With warm: every this many refreshes, a full re-selection, recording how far the warm one "
        "would have drifted (warm R against full R).",
    )
    export_suffix: str = Field(
        default=".jsonl",
        description=f"Form of the exported subsets: {', '.join(WRITABLE_SUFFIXES)}, or {AS_INPUT} (the form of the "
        "files their records were read from, where they share one; else .jsonl).",
    )
    skip_malformed: bool = Field(default=False, description="Skip and count bad records instead of failing.")
    format: RecordFormat | None = Field(
        default=None,
        description="Read every record as this format instead of detecting each record's (text files stay text).",
    )
    columns: ColumnMapping | None = Field(
        default=None,
        description="Which of the records' own fields hold the canonical roles (prompt, response, messages, ...) "
        "and how their conversations tag speakers, e.g. {prompt: Instruction, response: Output}. A record that "
        "lacks a mapped field is an error (or a counted skip with skip_malformed).",
    )
    columns_by_path: dict[str, ColumnMapping] = Field(
        default_factory=dict,
        description="A column mapping per path: a file, a folder above files, or a glob (the first that matches a "
        "file reads it; columns reads the others).",
    )
    description: str = Field(default="", description="What this pipeline is for; shown on its raw data asset.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags of every asset of the pipeline.")
    training: TrainingSettings | None = Field(
        default=None,
        description="Train on every subset (a training_run asset) and hold evaluation samples out of selection.",
    )
    law: LawSettings | None = Field(
        default=None,
        description="How the entropy_law asset fits and how strictly its risk check judges new data versions "
        "(defaults when unset); both exist whenever training is set.",
    )
    automation: bool = Field(
        default=True,
        description="Re-materialize on new data versions: an observation sensor and an automation sensor, both "
        "running by default (the daemon runs them: dagster dev, or dagster-daemon run), and eager conditions on "
        "every asset (the law waits for blocking checks).",
    )
    observe_interval_seconds: int = Field(
        default=30,
        description="How often the observation sensor looks at the raw files (it hashes them only when sizes or "
        "times change).",
    )
    refresh_cron: str | None = Field(
        default=None,
        description='A cron schedule that also observes the raw data (e.g. "0 3 * * *"), for sources a sensor '
        "cannot watch.",
    )
    shards: int = Field(
        default=1,
        description="Content-hash shards of the pool. Above 1, compression_scores is partitioned by shard: shards "
        "score as parallel runs, a data change rescores only the shards it touched, a run holds one shard in "
        "memory, and zip_hierarchical selects within shards.",
    )
    hierarchical_oversample: float = Field(
        default=2.0, description="zip_hierarchical: each shard keeps this many times its share of the budget."
    )
    quality: QualitySettings = Field(
        default_factory=QualitySettings,
        description="The quality gate in front of every method: samples carrying machine noise (encoded runs, "
        "stray characters, incompressible text) are excluded from every selection, random included. "
        "enabled: false offers every sample (the paper's ZIP).",
    )
    quality_jump: float = Field(
        default=0.01,
        description="The quality check warns when a new data version's excluded share rises by more than this "
        "(0.01: one percentage point) over the previous version's.",
    )
    random_seeds: int = Field(
        default=1,
        description="Random subsets at this many seeds (the first is random; then random_seed1, ...: partitions "
        "of their own), so that entropy_law can say whether a method beats random beyond chance.",
    )
    stratify: Literal["source", "format", "script"] | None = Field(
        default=None,
        description="Select within each source file, record format or dominant script: every stratum gets a share "
        "of the budget proportional to its share of the pool (or to stratify_weights), and each method selects "
        "within it, so that a subset keeps the pool's mix.",
    )
    stratify_weights: dict[str, float] | None = Field(
        default=None,
        description="With stratify: each stratum's weight instead of its share of the pool (a stratum left out "
        "gets nothing).",
    )
    composition_threshold: float = Field(
        default=0.2,
        description="The composition check fails when a facet's mix in a subset (source, format, script, length) "
        "is farther than this total variation distance from the pool's.",
    )
    composition_facets: tuple[Literal["source", "format", "script", "length"], ...] = Field(
        default=("source", "format", "script", "length"),
        description="The facets the composition check judges (each subset records all four).",
    )
    composition_severity: Literal["warn", "error"] = Field(
        default="warn", description="Severity of a failed composition check."
    )
    composition_blocking: bool = Field(
        default=False, description="A failed composition check stops what follows the subset (training, the law)."
    )
    freshness_hours: float | None = Field(
        default=DEFAULT_FRESHNESS_HOURS,
        description="The freshness policy of selected_subset and entropy_law: one whose latest materialization is "
        "older than this many hours fails it in the UI (Dagster measures the age of the latest materialization, "
        "not whether the raw data changed: set it to how often new data arrives); null for no policy.",
    )

    @model_validator(mode="after")
    def _check(self) -> SelectionPipeline:
        if not self.name.isidentifier():
            raise ValueError(f"pipeline name {self.name!r} must be a Python identifier (it names an asset group)")
        # Settings show in the UI and in metadata: a credential in any of them is refused, never repeated.
        refuse_inline_credentials(self.model_dump(), f"pipeline {self.name!r}")
        if not self.paths:
            raise ValueError(f"pipeline {self.name!r} needs at least one data path")
        if self.export_suffix not in (*WRITABLE_SUFFIXES, AS_INPUT):  # it ends the exported file's name
            raise ValueError(
                f"pipeline {self.name!r}: export_suffix must be one of {', '.join(WRITABLE_SUFFIXES)} or {AS_INPUT}, "
                f"got {self.export_suffix!r}"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"pipeline {self.name!r}: methods {unknown or '[]'} not in {', '.join(METHODS)}")
        if len(set(self.budgets)) != len(self.budgets) or not self.budgets:
            raise ValueError(f"pipeline {self.name!r}: budgets must be distinct and at least one")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"pipeline {self.name!r}: shards must be 1..{MAX_SHARDS}, got {self.shards}")
        if "zip_hierarchical" in self.methods and self.shards < 2:
            raise ValueError(f"pipeline {self.name!r}: method zip_hierarchical needs shards of 2 or more")
        for budget in self.budgets:  # every method's settings are validated before anything runs
            for method in dict.fromkeys(("zip", "random", *self.methods)):
                self.selection_config(method, budget)
        make_compressor(self.compressor, self.level)
        if self.random_seeds < 1 or (self.random_seeds > 1 and "random" not in self.methods):
            raise ValueError(f"pipeline {self.name!r}: random_seeds must be 1 or more, and above 1 needs method random")
        if not 0.0 < self.composition_threshold <= 1.0:
            raise ValueError(
                f"pipeline {self.name!r}: composition_threshold must be in (0, 1], got {self.composition_threshold}"
            )
        if not 0.0 < self.quality_jump <= 1.0:
            raise ValueError(f"pipeline {self.name!r}: quality_jump must be in (0, 1], got {self.quality_jump}")
        if self.stratify_weights is not None and self.stratify is None:
            raise ValueError(f"pipeline {self.name!r}: stratify_weights needs stratify")
        if self.full_every is not None and self.full_every < 1:
            raise ValueError(f"pipeline {self.name!r}: full_every must be 1 or more, got {self.full_every}")
        if self.freshness_hours is not None and not self.freshness_hours * 60 >= 1:
            raise ValueError(
                f"pipeline {self.name!r}: freshness_hours must be at least 1/60 (a minute, Dagster's shortest "
                f"window) or null, got {self.freshness_hours}"
            )
        if self.observe_interval_seconds <= 0:
            raise ValueError(f"pipeline {self.name!r}: observe_interval_seconds must be positive")
        if self.refresh_cron is not None:
            try:
                refresh_schedule(self.name, self.refresh_cron, dg.AssetKey([self.name, "raw_data"]))
            except dg.DagsterInvalidDefinitionError as error:
                raise ValueError(f"pipeline {self.name!r}: refresh_cron: {error}") from error
        if self.law is not None and self.training is None:
            raise ValueError(f"pipeline {self.name!r}: the entropy law needs training runs; set training too")
        return self

    def key(self, asset: str) -> dg.AssetKey:
        """The key of one of the pipeline's assets: ``<name>/<asset>``."""
        return dg.AssetKey([self.name, asset])

    @property
    def freshness_policy(self) -> dg.FreshnessPolicy | None:
        """The freshness policy of the subsets and the law (``freshness_hours``); None without one."""
        if self.freshness_hours is None:
            return None
        return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=self.freshness_hours))

    @property
    def partitions(self) -> dg.PartitionsDefinition:
        """The partitions of ``selected_subset`` and ``training_run``: by method, and by budget when several."""
        methods = dg.StaticPartitionsDefinition(list(self.partition_methods))
        if len(self.budgets) == 1:
            return methods
        budgets = dg.StaticPartitionsDefinition([str(b) for b in self.budgets])
        return dg.MultiPartitionsDefinition({"budget": budgets, "method": methods})

    @property
    def partition_methods(self) -> tuple[str, ...]:
        """The method partitions: every method, and random's extra seeds (``random_seed1``, ...)."""
        seeds = [f"{RANDOM}{SEED_SUFFIX}{i}" for i in range(1, self.random_seeds)] if RANDOM in self.methods else []
        return (*self.methods, *seeds)

    def partition(self, key: str | dg.MultiPartitionKey) -> tuple[str, int]:
        """The method and budget of a ``selected_subset`` partition."""
        if isinstance(key, dg.MultiPartitionKey):
            return key.keys_by_dimension["method"], int(key.keys_by_dimension["budget"])
        return str(key), self.budgets[0]

    @property
    def shard_partitions(self) -> dg.StaticPartitionsDefinition | None:
        """The partitions of ``compression_scores``: one per shard, or None when the pool is one shard."""
        return dg.StaticPartitionsDefinition(shard_keys(self.shards)) if self.shards > 1 else None

    @property
    def selects_shards(self) -> bool:
        """Whether hierarchical ZIP's shards are selected as partitions of ``shard_selection`` (a stratified
        selection runs its shards inside the subset's step, stratum by stratum)."""
        return "zip_hierarchical" in self.methods and self.shards > 1 and self.stratify is None

    @property
    def shard_selection_partitions(self) -> dg.PartitionsDefinition:
        """The partitions of ``shard_selection``: one per shard, and by budget too when several."""
        shards = dg.StaticPartitionsDefinition(shard_keys(self.shards))
        if len(self.budgets) == 1:
            return shards
        budgets = dg.StaticPartitionsDefinition([str(b) for b in self.budgets])
        return dg.MultiPartitionsDefinition({"budget": budgets, "shard": shards})

    def shard_partition(self, key: str | dg.MultiPartitionKey) -> tuple[str, int]:
        """The shard and budget of a ``shard_selection`` partition."""
        if isinstance(key, dg.MultiPartitionKey):
            return key.keys_by_dimension["shard"], int(key.keys_by_dimension["budget"])
        return str(key), self.budgets[0]

    def shard_partition_key(self, shard: str, budget: int) -> str | dg.MultiPartitionKey:
        """The ``shard_selection`` partition of ``shard`` at ``budget``."""
        if len(self.budgets) == 1:
            return shard
        return dg.MultiPartitionKey({"budget": str(budget), "shard": shard})

    def hierarchical_subset(self, budget: int) -> SubsetSettings:
        """The zip_hierarchical subset at ``budget``, whose shards ``shard_selection`` selects."""
        if len(self.budgets) == 1:
            return self.subset("zip_hierarchical")
        return self.subset(dg.MultiPartitionKey({"budget": str(budget), "method": "zip_hierarchical"}))

    @property
    def source_columns(self) -> SourceColumns:
        """Which column mapping reads each source."""
        return SourceColumns.of(self.columns, self.columns_by_path)

    @property
    def scoring(self) -> ScoringSettings:
        """How the pool is scored."""
        return ScoringSettings(compressor=self.compressor, level=self.level, shards=self.shards, quality=self.quality)

    def selection_config(self, method: str, budget: int) -> SelectionConfig:
        """The validated configuration of one method partition at one budget (random's extra seeds are random at
        the pipeline's seed plus their number)."""
        seed = self.seed
        if is_random(method) and method != RANDOM:
            method, seed = RANDOM, self.seed + int(method.removeprefix(RANDOM + SEED_SUFFIX))
        options = SelectionOptions(
            budget=budget,
            budget_unit=self.budget_unit,
            k1=self.k1,
            k2=self.k2,
            k3=self.k3,
            compressor=self.compressor,
            level=self.level,
            seed=seed,
            shards=self.shards,
            oversample=self.hierarchical_oversample,
            # In a daemonic process (a dask worker, say) the shards cannot go to child processes.
            processes=1 if multiprocessing.current_process().daemon else 0,
            stratify=self._stratify(),
        )
        return method_config(method, options)

    def _stratify(self) -> Stratify | None:
        if self.stratify is None:
            return None
        weights = tuple(sorted(self.stratify_weights.items())) if self.stratify_weights is not None else None
        return Stratify(self.stratify, weights)

    def subset(self, key: str | dg.MultiPartitionKey) -> SubsetSettings:
        """The subset of a ``selected_subset`` partition."""
        method, budget = self.partition(key)
        return SubsetSettings(
            method=method,
            budget=budget,
            config=self.selection_config(method, budget),
            holdout=self.training.holdout if self.training else 0,
            eval_paths=tuple(self.training.eval_paths) if self.training else (),
            export_suffix=self.export_suffix,
            reselect=self.reselect,
            full_every=self.full_every,
            columns=self.source_columns,
        )
