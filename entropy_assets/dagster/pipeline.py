"""The asset graph of one selection pipeline: raw data -> pool -> compression scores -> selected subsets.

``selection_pipeline_defs(settings)`` is the Python factory; the YAML component builds the same definitions
from the same settings.
"""

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from dagster import AssetExecutionContext

from entropy_assets.compression import default_threads, join_samples, make_compressor
from entropy_assets.plots import ratio_histogram_png
from entropy_assets.selection.base import Selection
from entropy_assets.selection.baselines import BASELINES, BaselineConfig, baseline_select
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import SourceError, data_version, file_hashes, load_pool

from .automation import automation_sensor, eager, observation_sensor, refresh_schedule
from .law import LawSettings, build_law_defs
from .storage import EntropyStorage, latest_output
from .training import TrainingSettings, build_training_asset, holdout_mask

METHODS: tuple[str, ...] = ("zip", "zip_paper", *BASELINES)
"""Selection methods a pipeline can partition by: ZIP in its two modes and the baselines."""

SUBSET_CODE_VERSION = "selected-subset-2"

SCORES_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "content_hash": pl.String(),
    "n_bytes": pl.Int64(),
    "compressed_bytes": pl.Int64(),
    "compressor": pl.String(),
    "ratio": pl.Float64(),
}
"""``compression_scores``: one row per pool sample; ``compressor`` holds the settings that made the sizes."""


@dataclass(frozen=True)
class SelectionPipeline:
    """Settings of one pipeline: where its raw data is, how to select from it, and where outputs go."""

    name: str
    paths: Sequence[str]
    methods: Sequence[str] = ("zip", "random", "ratio", "longest", "dedup")
    budgets: Sequence[int] = (1000,)
    budget_unit: str = "samples"
    k1: int = 10000
    k2: int = 200
    k3: int = 100
    compressor: str = "zstd"
    level: int | None = None
    seed: int = 0
    export_suffix: str = ".jsonl"
    skip_malformed: bool = False
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    training: TrainingSettings | None = None
    """Train on every subset (a ``training_run`` asset) and hold evaluation samples out of selection."""
    automation: bool = True
    """Re-materialize on new data versions: an observation sensor and an automation sensor, both running by
    default, and eager conditions on every asset (the law waits for blocking checks)."""
    observe_interval_seconds: int = 30
    """How often the observation sensor looks at the raw files (it hashes them only when sizes or times change)."""
    refresh_cron: str | None = None
    """A cron schedule that also observes the raw data (e.g. ``"0 3 * * *"``), for sources a sensor cannot watch."""
    law: LawSettings | None = None
    """How the ``entropy_law`` asset fits and how strictly its risk check judges new data versions (defaults when
    None); both exist whenever ``training`` is set."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"pipeline name {self.name!r} must be a Python identifier (it names an asset group)")
        if not self.paths:
            raise ValueError(f"pipeline {self.name!r} needs at least one data path")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"pipeline {self.name!r}: methods {unknown or '[]'} not in {', '.join(METHODS)}")
        if len(set(self.budgets)) != len(self.budgets) or not self.budgets:
            raise ValueError(f"pipeline {self.name!r}: budgets must be distinct and at least one")
        for budget in self.budgets:  # validates every setting before anything runs
            self.selection_config("zip", budget)
            self.selection_config("random", budget)
        make_compressor(self.compressor, self.level)
        if self.observe_interval_seconds <= 0:
            raise ValueError(f"pipeline {self.name!r}: observe_interval_seconds must be positive")
        if self.refresh_cron is not None:
            try:
                refresh_schedule(self.name, self.refresh_cron, dg.AssetKey([self.name, "raw_data"]))
            except dg.DagsterInvalidDefinitionError as error:
                raise ValueError(f"pipeline {self.name!r}: refresh_cron: {error}") from error
        if self.law is not None and self.training is None:
            raise ValueError(f"pipeline {self.name!r}: the entropy law needs training runs; set training too")

    @property
    def partitions(self) -> dg.PartitionsDefinition:
        methods = dg.StaticPartitionsDefinition(list(self.methods))
        if len(self.budgets) == 1:
            return methods
        budgets = dg.StaticPartitionsDefinition([str(b) for b in self.budgets])
        return dg.MultiPartitionsDefinition({"budget": budgets, "method": methods})

    def partition(self, key: str | dg.MultiPartitionKey) -> tuple[str, int]:
        """The method and budget of a ``selected_subset`` partition."""
        if isinstance(key, dg.MultiPartitionKey):
            return key.keys_by_dimension["method"], int(key.keys_by_dimension["budget"])
        return str(key), self.budgets[0]

    def selection_config(self, method: str, budget: int) -> ZipConfig | BaselineConfig:
        """The validated configuration of one method at one budget."""
        if method in ("zip", "zip_paper"):
            paper = method == "zip_paper"
            return ZipConfig(
                budget=budget,
                k1=self.k1,
                k2=self.k2,
                k3=self.k3,
                mode="paper" if paper else "default",
                compressor="zlib" if paper else self.compressor,
                level=None if paper else self.level,
                budget_unit=self.budget_unit,  # type: ignore[arg-type]
                seed=self.seed,
            )
        return BaselineConfig(
            method=method,  # type: ignore[arg-type]
            budget=budget,
            budget_unit=self.budget_unit,  # type: ignore[arg-type]
            seed=self.seed,
            compressor=self.compressor,
            level=self.level,
        )


def selection_pipeline_defs(settings: SelectionPipeline, *, storage: EntropyStorage | None = None) -> dg.Definitions:
    """The assets of ``settings`` as Definitions, with the storage resource (a local folder by default)."""
    storage = storage or EntropyStorage()
    resources: dict[str, Any] = {"entropy_storage": storage}
    if settings.training is not None:
        resources["pipes_subprocess_client"] = dg.PipesSubprocessClient()
    sensors: list[Any] = []
    schedules: list[Any] = []
    raw_key = dg.AssetKey([settings.name, "raw_data"])
    if settings.automation:
        interval = settings.observe_interval_seconds
        sensors = [
            observation_sensor(settings.name, settings.paths, raw_key, interval),
            automation_sensor(settings.name, interval),
        ]
    if settings.refresh_cron:
        schedules.append(refresh_schedule(settings.name, settings.refresh_cron, raw_key))
    return dg.Definitions(assets=build_assets(settings), resources=resources, sensors=sensors, schedules=schedules)


def build_assets(settings: SelectionPipeline) -> list[Any]:
    """The pipeline's source asset, assets and asset checks, keys prefixed and grouped by the pipeline's name."""
    name = settings.name
    prefix = [name]
    raw_key = dg.AssetKey([*prefix, "raw_data"])
    pool_key, scores_key = dg.AssetKey([*prefix, "pool"]), dg.AssetKey([*prefix, "compression_scores"])
    common: dict[str, Any] = {"key_prefix": prefix, "group_name": name, "tags": dict(settings.tags)}
    if settings.automation:
        common["automation_condition"] = eager()

    @dg.observable_source_asset(
        name="raw_data",
        key_prefix=prefix,
        group_name=name,
        description=f"The source files of pipeline {name!r}: {', '.join(settings.paths)}. Observed with a "
        "data version from their content hashes: any changed byte is a new version.",
    )
    def raw_data() -> dg.ObserveResult:
        hashes = file_hashes(settings.paths)
        version = data_version(settings.paths, hashes)
        return dg.ObserveResult(
            data_version=dg.DataVersion(version),
            metadata={
                "paths": ", ".join(settings.paths),
                "data_version": version,
                "files": dg.MetadataValue.json(hashes),
            },
        )

    @dg.asset(
        name="pool",
        deps=[raw_key],
        code_version="pool-1",
        kinds={"polars", "parquet"},
        description="Every record of the raw data as canonical text (content only, with role tags), with its "
        "original record so that a selection can be written back in its own format.",
        **common,
    )
    def pool(entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        version = data_version(settings.paths)
        loaded = load_pool(settings.paths, skip_malformed=settings.skip_malformed)
        if data_version(settings.paths) != version:  # the file would be stored under a version it is not
            raise SourceError(
                f"the raw data at {', '.join(settings.paths)} changed while it was being read; nothing was "
                "written: materialize again once it has settled"
            )
        path = entropy_storage.write_version(loaded.frame, name, "pool", f"{version}.parquet")
        report = loaded.report
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "file": entropy_storage.relative(path),
                "dagster/row_count": loaded.frame.height,
                "records_read": report.records_read,
                "records_kept": report.records_kept,
                "dropped": dg.MetadataValue.json(dict(report.dropped)),
                "invalid_utf8_replaced": report.invalid_utf8,
                "bytes": report.bytes,
                "formats": dg.MetadataValue.json(dict(report.formats)),
                "files": len(report.files),
                "raw_data_version": version,
                "version": version,
            },
            data_version=dg.DataVersion(version),
        )

    @dg.asset(
        name="compression_scores",
        deps=[pool],
        code_version="compression-scores-1",
        kinds={"polars", "parquet", settings.compressor},
        description="Per-sample compressed size and ratio. Scores of samples whose content is unchanged are "
        "reused from the previous materialization: a small data change rescores only what changed.",
        **common,
    )
    def compression_scores(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        pool_output = latest_output(context.instance, pool_key)
        frame = entropy_storage.read_parquet(pool_output["file"])
        compressor = make_compressor(settings.compressor, settings.level)
        key = _settings_key(compressor)
        previous_output = latest_output(context.instance, scores_key, required=False)
        previous = _previous_scores(entropy_storage, previous_output, key)
        scores, rescored = _score(frame, compressor, previous)
        settings_hash = hashlib.sha256(key.encode()).hexdigest()[:8]
        version = f"{pool_output['version']}.{settings_hash}"
        path = entropy_storage.write_version(scores, name, "compression_scores", f"{version}.parquet")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "file": entropy_storage.relative(path),
                "version": version,
                "pool_version": pool_output["version"],
                "dagster/row_count": scores.height,
                "rescored": rescored,
                "reused": scores.height - rescored,
                "mean_ratio": float(scores["ratio"].mean() or 0.0),
                "compressor": dg.MetadataValue.json(compressor.describe()),
            }
        )

    @dg.asset(
        name="selected_subset",
        deps=[pool, compression_scores],
        partitions_def=settings.partitions,
        code_version=SUBSET_CODE_VERSION,
        kinds={"polars", "parquet"},
        description="A subset chosen by one method (ZIP or a baseline) at one budget: the chosen ids with "
        "per-sample provenance (round, stage scores, marginal compressed bytes), and the subset written back "
        f"in its records' original form ({settings.export_suffix}), ready for a trainer.",
        **common,
    )
    def selected_subset(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        method, budget = settings.partition(context.partition_key)
        config = settings.selection_config(method, budget)
        pool_output = latest_output(context.instance, pool_key)
        scores_output = latest_output(context.instance, scores_key)
        pool = entropy_storage.read_parquet(pool_output["file"])
        scores = entropy_storage.read_parquet(scores_output["file"])
        # Evaluation samples are never offered to selection.
        offered = ~holdout_mask(pool, settings.training.holdout if settings.training else 0)
        frame, scores = pool.filter(offered), scores.filter(offered)
        selection = _select(frame, config)
        subset = selection.subset(frame)
        stem = f"{method}_{budget}"
        # The whole selection is computed before anything is written: a failure leaves earlier files as they were.
        table = selection.provenance.join(
            frame.select("id", "source", "index", "format", "n_bytes", "content_hash"), on="id", how="left"
        )
        # Same inputs, settings and code give the same subset: the version names it, and is written once.
        inputs = [pool_output["version"], scores_output["version"], json.dumps(selection.config, sort_keys=True)]
        version = hashlib.sha256("\n".join([*inputs, SUBSET_CODE_VERSION]).encode()).hexdigest()[:16]
        folder = (name, "selected_subset", stem)
        path = entropy_storage.write_version(table, *folder, f"{version}.parquet")
        export = entropy_storage.write_records(subset, *folder, f"{version}{settings.export_suffix}")
        png = _histogram(selection, frame, scores)
        plot = entropy_storage.write_bytes(png, *folder, f"{version}.ratio_histogram.png")
        metadata = _subset_metadata(selection, subset, frame, scores)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(version),
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "file": entropy_storage.relative(path),
                "version": version,
                "pool_version": pool_output["version"],
                "pool_file": pool_output["file"],
                "export": dg.MetadataValue.path(str(export)),
                "plot_path": dg.MetadataValue.path(str(plot)),
                **metadata,
                "ratio_histogram": dg.MetadataValue.md(
                    f"![per-sample ratios](data:image/png;base64,{base64.b64encode(png).decode()})"
                ),
            },
        )

    assets: list[Any] = [raw_data, pool, compression_scores, selected_subset]
    if settings.training is not None:
        training_run = build_training_asset(settings, settings.training, selected_subset.key, common)
        assets.extend(
            [training_run, *build_law_defs(settings, settings.law or LawSettings(), training_run.key, common)]
        )
    return assets


def _select(frame: pl.DataFrame, config: ZipConfig | BaselineConfig) -> Selection:
    if isinstance(config, ZipConfig):
        return zip_select(frame, config)
    return baseline_select(frame, config)


def _settings_key(compressor: Any) -> str:
    return json.dumps(compressor.describe(), sort_keys=True)


def _previous_scores(storage: EntropyStorage, previous: dict[str, Any] | None, settings: str) -> pl.DataFrame | None:
    """The last stored scores, if they were made with the same compressor settings."""
    if previous is None or "file" not in previous or not storage.exists(previous["file"]):
        return None
    scores = storage.read_parquet(previous["file"])
    if scores.is_empty() or scores["compressor"][0] != settings:
        return None
    return scores


def _score(frame: pl.DataFrame, compressor: Any, previous: pl.DataFrame | None) -> tuple[pl.DataFrame, int]:
    """Scores for every sample of ``frame``, reusing ``previous`` by content hash; also how many were new."""
    known: dict[str, int] = {}
    if previous is not None:
        known = dict(zip(previous["content_hash"].to_list(), previous["compressed_bytes"].to_list(), strict=True))
    hashes = frame["content_hash"].to_list()
    missing = [i for i, h in enumerate(hashes) if h not in known]
    texts = frame["text"].to_list()
    sizes = compressor.compressed_sizes([texts[i].encode("utf-8") for i in missing], default_threads())
    known.update({hashes[i]: int(size) for i, size in zip(missing, sizes, strict=True)})
    scores = frame.select("id", "content_hash", "n_bytes").with_columns(
        compressed_bytes=pl.Series([known[h] for h in hashes], dtype=pl.Int64),
        compressor=pl.lit(_settings_key(compressor)),
    )
    scores = scores.with_columns(ratio=pl.col("n_bytes") / pl.col("compressed_bytes"))
    return scores.select(list(SCORES_SCHEMA)).cast(dict(SCORES_SCHEMA)), len(missing)


def _histogram(selection: Selection, frame: pl.DataFrame, scores: pl.DataFrame) -> bytes:
    """Per-sample ratios of the pool and of the subset, as a PNG (about 20 KB)."""
    ratios = scores["ratio"].to_numpy()
    return ratio_histogram_png(
        {"pool": ratios, selection.method: ratios[selection.positions]},
        f"{selection.method}: {len(selection)} of {frame.height} samples",
    )


def _subset_metadata(
    selection: Selection, subset: pl.DataFrame, frame: pl.DataFrame, scores: pl.DataFrame
) -> dict[str, Any]:
    """What a reviewer asks first about a subset: size, bytes, compression ratio, configuration."""
    texts = [t.encode("utf-8") for t in subset["text"].to_list()]
    sample_ratios = scores["ratio"].to_numpy()[selection.positions]
    return {
        "dagster/row_count": len(selection),
        "size": len(selection),
        "bytes": int(subset["n_bytes"].sum()),
        "compression_ratio_zlib9": round(make_compressor("zlib", 9).ratio(join_samples(texts)), 4),
        "mean_sample_ratio": round(float(np.mean(sample_ratios)) if len(sample_ratios) else 0.0, 4),
        "pool_size": frame.height,
        "seconds": selection.summary.get("seconds", 0.0),
        "config": dg.MetadataValue.json(selection.config),
    }
