"""The asset graph of one selection pipeline: raw data -> pool -> compression scores -> selected subsets.

``selection_pipeline_defs(settings)`` is the Python factory; the YAML component builds the same definitions
from the same settings.
"""

import base64
import hashlib
import json
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from dagster import AssetExecutionContext

from entropy_assets.compression import join_samples, make_compressor
from entropy_assets.credentials import refuse_inline_credentials
from entropy_assets.plots import ratio_histogram_png
from entropy_assets.scoring import read_shard, score_samples, shard_keys, write_shard_ordered
from entropy_assets.selection import methods
from entropy_assets.selection.base import Selection
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.methods import METHODS, SelectionConfig, SelectionOptions, method_config
from entropy_assets.sources import WRITABLE_SUFFIXES, SourceError, load_pool
from entropy_assets.versions import compressor_settings_hash, data_version, file_hashes, shard_fingerprints

from .automation import automation_sensor, eager, observation_sensor, refresh_schedule
from .law import LawSettings, build_law_defs
from .shards import pool_fingerprints, pool_scores, scores_version, shard_sensor
from .storage import EntropyStorage, latest_output
from .training import TrainingSettings, build_training_asset, holdout_mask

SUBSET_CODE_VERSION = "selected-subset-2"
MAX_SHARDS = 4096


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
    shards: int = 1
    """Content-hash shards of the pool. Above 1, ``compression_scores`` is partitioned by shard: shards score as
    parallel runs, a data change rescores only the shards it touched, and a run holds one shard in memory."""
    hierarchical_oversample: float = 2.0
    """``zip_hierarchical``: each shard keeps this many times its share of the budget for the final pass."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"pipeline name {self.name!r} must be a Python identifier (it names an asset group)")
        refuse_inline_credentials(asdict(self), f"pipeline {self.name!r}")  # settings show in the UI and metadata
        if not self.paths:
            raise ValueError(f"pipeline {self.name!r} needs at least one data path")
        if self.export_suffix not in WRITABLE_SUFFIXES:  # it ends the exported file's name in the storage
            raise ValueError(
                f"pipeline {self.name!r}: export_suffix must be one of {', '.join(WRITABLE_SUFFIXES)}, "
                f"got {self.export_suffix!r}"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"pipeline {self.name!r}: methods {unknown or '[]'} not in {', '.join(METHODS)}")
        if len(set(self.budgets)) != len(self.budgets) or not self.budgets:
            raise ValueError(f"pipeline {self.name!r}: budgets must be distinct and at least one")
        for budget in self.budgets:  # validates every setting before anything runs
            for method in ("zip", "random", *(m for m in self.methods if m != "zip_hierarchical")):
                self.selection_config(method, budget)
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
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"pipeline {self.name!r}: shards must be 1..{MAX_SHARDS}, got {self.shards}")
        if "zip_hierarchical" in self.methods:
            if self.shards < 2:
                raise ValueError(f"pipeline {self.name!r}: method zip_hierarchical needs shards of 2 or more")
            self.selection_config("zip_hierarchical", self.budgets[0])

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

    @property
    def scores_settings_hash(self) -> str:
        """What names the compressor settings in the scores' versions."""
        return compressor_settings_hash(make_compressor(self.compressor, self.level))

    @property
    def shard_partitions(self) -> dg.StaticPartitionsDefinition | None:
        """The partitions of ``compression_scores``: one per shard, or None when the pool is one shard."""
        return dg.StaticPartitionsDefinition(shard_keys(self.shards)) if self.shards > 1 else None

    def selection_config(self, method: str, budget: int) -> SelectionConfig:
        """The validated configuration of one method at one budget."""
        options = SelectionOptions(
            budget=budget,
            budget_unit=self.budget_unit,  # type: ignore[arg-type]
            k1=self.k1,
            k2=self.k2,
            k3=self.k3,
            compressor=self.compressor,
            level=self.level,
            seed=self.seed,
            shards=self.shards,
            oversample=self.hierarchical_oversample,
            # In a daemonic process (a dask worker, say) the shards cannot go to child processes.
            processes=1 if multiprocessing.current_process().daemon else 0,
        )
        return method_config(method, options)


def selection_pipeline_defs(settings: SelectionPipeline, *, storage: EntropyStorage | None = None) -> dg.Definitions:
    """The assets of ``settings`` as Definitions, with the storage resource (a local folder by default)."""
    storage = storage or EntropyStorage()
    storage.check_base_path()  # the settings' own credentials are refused by SelectionPipeline itself
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
        if settings.shards > 1:
            keys = (dg.AssetKey([settings.name, n]) for n in ("pool", "compression_scores", "selected_subset"))
            sensors.append(
                shard_sensor(settings.name, tuple(keys), settings.partitions, settings.scores_settings_hash, interval)
            )
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

    # Sharded, a sensor requests the shards a new pool changed, then the subsets (see shards.py).
    sensor_driven = {**common, "automation_condition": None} if settings.shards > 1 else common

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
        try:
            loaded = load_pool(settings.paths, skip_malformed=settings.skip_malformed)
        except SourceError as error:  # a half-written record, say: if the data moved meanwhile, that is the cause
            _check_unchanged(settings.paths, version, cause=error)
            raise
        _check_unchanged(settings.paths, version)  # else the pool would be stored under a version it is not
        path = entropy_storage.write_version(loaded.frame, name, "pool", f"{version}.parquet")
        report = loaded.report
        shards: dict[str, Any] = {}
        if settings.shards > 1:  # scoring reads its shard from a copy of the pool ordered by shard
            count = settings.shards
            ordered = entropy_storage.write_once(
                lambda local: write_shard_ordered(loaded.frame, count, local),
                name,
                "pool",
                f"{version}.shards{count}.parquet",
            )
            shards = {
                "shard_file": entropy_storage.relative(ordered),
                "shard_fingerprints": dg.MetadataValue.json(shard_fingerprints(loaded.frame, count)),
            }
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
                **shards,
            },
            data_version=dg.DataVersion(version),
        )

    @dg.asset(
        name="compression_scores",
        deps=[pool],
        partitions_def=settings.shard_partitions,
        code_version="compression-scores-1",
        kinds={"polars", "parquet", settings.compressor},
        description="Per-sample compressed size and ratio. Scores of samples whose content is unchanged are "
        "reused from the previous materialization: a small data change rescores only what changed."
        + (
            f" Partitioned into {settings.shards} content-hash shards, each scored by its own run: a shard whose "
            "samples did not change reuses its stored scores whole."
            if settings.shards > 1
            else ""
        ),
        **sensor_driven,
    )
    def compression_scores(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        pool_output = latest_output(context.instance, pool_key)
        compressor = make_compressor(settings.compressor, settings.level)
        settings_hash = compressor_settings_hash(compressor)
        partition = context.partition_key if settings.shards > 1 else None

        def previous() -> pl.DataFrame | None:  # the partition's last stored scores, read only when scoring
            return _stored(entropy_storage, latest_output(context.instance, scores_key, partition, required=False))

        started = time.perf_counter()
        if partition is None:
            frame = entropy_storage.read_parquet(pool_output["file"])
            scores, rescored = score_samples(frame, compressor, previous())
            version = f"{pool_output['version']}.{settings_hash}"
            path = entropy_storage.write_version(scores, name, "compression_scores", f"{version}.parquet")
            shard: dict[str, Any] = {}
        else:
            fingerprint = pool_fingerprints(entropy_storage, pool_output, settings.shards)[partition]
            version = scores_version(fingerprint, settings_hash)
            folder = (name, "compression_scores", partition)
            if entropy_storage.exists(*folder, f"{version}.parquet"):  # same samples, same settings: scored before
                scores, rescored = entropy_storage.read_parquet(*folder, f"{version}.parquet"), 0
            else:
                index = shard_keys(settings.shards).index(partition)
                source = pool_output.get("shard_file", pool_output["file"])
                frame = read_shard(str(entropy_storage.path(source)), index, settings.shards)
                scores, rescored = score_samples(frame, compressor, previous())
            path = entropy_storage.write_version(scores, *folder, f"{version}.parquet")
            shard = {"shard": partition, "shard_fingerprint": fingerprint, "shards": settings.shards}
        seconds = time.perf_counter() - started
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "file": entropy_storage.relative(path),
                "version": version,
                "pool_version": pool_output["version"],
                **shard,
                "dagster/row_count": scores.height,
                "rescored": rescored,
                "reused": scores.height - rescored,
                "seconds": round(seconds, 3),
                "mean_ratio": float(scores["ratio"].mean() or 0.0),
                "compressor": dg.MetadataValue.json(compressor.describe()),
            }
        )

    @dg.asset(
        name="selected_subset",
        # Every subset reads every shard of the scores.
        deps=[pool, dg.AssetDep(compression_scores, partition_mapping=dg.AllPartitionMapping())],
        partitions_def=settings.partitions,
        code_version=SUBSET_CODE_VERSION,
        kinds={"polars", "parquet"},
        description="A subset chosen by one method (ZIP or a baseline) at one budget: the chosen ids with "
        "per-sample provenance (round, stage scores, marginal compressed bytes), and the subset written back "
        f"in its records' original form ({settings.export_suffix}), ready for a trainer.",
        **sensor_driven,
    )
    def selected_subset(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        method, budget = settings.partition(context.partition_key)
        config = settings.selection_config(method, budget)
        pool_output = latest_output(context.instance, pool_key)
        pool = entropy_storage.read_parquet(pool_output["file"])
        scores, input_version = _scores_for(context.instance, entropy_storage, scores_key, settings, pool_output, pool)
        # Evaluation samples are never offered to selection.
        offered = ~holdout_mask(pool, settings.training.holdout if settings.training else 0)
        frame, scores = pool.filter(offered), scores.filter(offered)
        # Same inputs, settings and code give the same subset: the version names it, and is written once.
        version = _subset_version(pool_output["version"], input_version, config)
        folder = (name, "selected_subset", f"{method}_{budget}")
        checkpoint = _checkpoint(entropy_storage, folder, version, method, context)
        selection = methods.select(frame, config, checkpoint=checkpoint)
        resumed = int(selection.summary.get("resumed_from_round", 0))
        if selection.summary.get("shards_resumed"):
            context.log.info(f"{selection.summary['shards_resumed']} shards' winners read from their checkpoints")
        subset = selection.subset(frame)
        # The whole selection is computed before anything is written: a failure leaves earlier files as they were.
        table = selection.provenance.join(
            frame.select("id", "source", "index", "format", "n_bytes", "content_hash"), on="id", how="left"
        )
        path = entropy_storage.write_version(table, *folder, f"{version}.parquet")
        export = entropy_storage.write_records(subset, *folder, f"{version}{settings.export_suffix}")
        png = _histogram(selection, frame, scores)
        plot = entropy_storage.write_bytes(png, *folder, f"{version}.ratio_histogram.png")
        metadata = _subset_metadata(selection, subset, frame, scores)
        if checkpoint is not None:  # the subset's files are written: nothing is left to resume
            checkpoint.remove()
        return dg.MaterializeResult(
            data_version=dg.DataVersion(version),
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "file": entropy_storage.relative(path),
                "version": version,
                "pool_version": pool_output["version"],
                "pool_file": pool_output["file"],
                "resumed_from_round": resumed,
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


CHECKPOINT_SECONDS = 2.0
"""A ZIP subset saves its checkpoint after a completed round once this many seconds have passed since the last
save: a kill loses at most this much work, and the saves cost no measurable time (every round: +13% on Alpaca
52K, ``benchmarks/selection_resume.py``)."""


def _subset_version(
    pool_version: str, scores_version: str, config: SelectionConfig
) -> str:
    """The version of a subset, known before selecting: its pool, scores, settings and code. (``asdict`` of the
    configuration is what the selection records as its ``config``.)"""
    inputs = [pool_version, scores_version, json.dumps(asdict(config), sort_keys=True)]
    return hashlib.sha256("\n".join([*inputs, SUBSET_CODE_VERSION]).encode()).hexdigest()[:16]


def _checkpoint(
    storage: EntropyStorage,
    folder: tuple[str, ...],
    version: str,
    method: str,
    context: AssetExecutionContext,
) -> SelectionCheckpoint | None:
    """Where a ZIP subset checkpoints its rounds: beside the subset, as ``<version>.checkpoint`` (and its parts),
    so that a rerun after a kill resumes (and logs ``resumed from round N``). Baselines are fast and keep none;
    nor does remote storage, where a save would be an upload: a killed selection there starts again."""
    if not methods.SELECTION_METHODS[method].checkpoints:
        return None
    target = storage.local_path(*folder, f"{version}.checkpoint")
    if target is None:
        return None
    return SelectionCheckpoint(target, CHECKPOINT_SECONDS, warn=context.log.warning, info=context.log.info)


def _check_unchanged(paths: Sequence[str], version: str, *, cause: SourceError | None = None) -> None:
    """Raise if the raw data at ``paths`` is no longer at ``version``: it changed while it was being read."""
    if data_version(paths) != version:
        raise SourceError(
            f"the raw data at {', '.join(paths)} changed while it was being read; nothing was written: materialize "
            "again once it has settled"
        ) from cause


def _stored(storage: EntropyStorage, output: dict[str, Any] | None) -> pl.DataFrame | None:
    """The frame a materialization stored, if it still exists."""
    if output is None or "file" not in output or not storage.exists(output["file"]):
        return None
    return storage.read_parquet(output["file"])


def _scores_for(
    instance: dg.DagsterInstance,
    storage: EntropyStorage,
    scores_key: dg.AssetKey,
    settings: SelectionPipeline,
    pool_output: dict[str, Any],
    pool: pl.DataFrame,
) -> tuple[pl.DataFrame, str]:
    """The scores of every sample of ``pool``, row for row, and their version; they must be of the latest pool."""
    if settings.shards > 1:
        return pool_scores(
            instance, storage, scores_key, settings.shards, settings.scores_settings_hash, pool_output, pool
        )
    output = latest_output(instance, scores_key)
    if output.get("pool_version") != pool_output["version"]:
        raise ValueError(
            f"{scores_key.to_user_string()} was made from pool version {output.get('pool_version')}, not the "
            f"latest {pool_output['version']}; materialize it first"
        )
    return storage.read_parquet(output["file"]), str(output["version"])


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
