"""The selection assets of a pipeline: raw data -> pool -> compression scores -> selected subsets. Each reads its
upstream results from the event log, runs one step (``entropy_assets.stages``) and returns the step's metadata."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from entropy_assets.composition import FacetMix, judge_composition
from entropy_assets.stages import (
    PoolResult,
    ScoresResult,
    ShardSelectionResult,
    SubsetResult,
    build_pool,
    gather_winners,
    judge_exclusions,
    observe_raw_data,
    score_pool,
    score_shard,
    select_shard,
    select_subset,
)
from entropy_assets.versions import SUBSET_CODE_VERSION

from .events import dagster_metadata, latest, materialized, required
from .previews import deliberate_previews
from .settings import SelectionPipeline
from .storage import EntropyStorage


@deliberate_previews()
def raw_data_asset(settings: SelectionPipeline) -> dg.AssetsDefinition:
    """The source files, observed with a data version from their content hashes."""
    about = f"{settings.description} " if settings.description else ""

    @dg.observable_source_asset(
        name="raw_data",
        key_prefix=[settings.name],
        group_name=settings.name,
        description=f"{about}The source files of pipeline {settings.name!r}: {', '.join(settings.paths)}. Observed "
        "with a data version from their content hashes: any changed byte is a new version.",
    )
    def raw_data() -> dg.ObserveResult:
        result = observe_raw_data(settings.paths)
        return dg.ObserveResult(
            data_version=dg.DataVersion(result.version), metadata=dagster_metadata(result.to_metadata())
        )

    return raw_data


def pool_asset(settings: SelectionPipeline, common: dict[str, Any]) -> dg.AssetsDefinition:
    @dg.asset(
        name="pool",
        deps=[settings.key("raw_data")],
        code_version="pool-1",
        kinds={"polars", "parquet"},
        description="Every record of the raw data as canonical text (content only, with role tags), with its "
        "original record so that a selection can be written back in its own format.",
        **common,
    )
    def pool(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        workspace = entropy_storage.workspace(settings.name, context.log)
        result = build_pool(
            workspace,
            settings.paths,
            skip_malformed=settings.skip_malformed,
            shards=settings.shards,
            fmt=settings.format,
            columns=settings.source_columns,
        )
        return materialized(result, data_version=result.version)

    return pool


@deliberate_previews()
def scores_asset(settings: SelectionPipeline, common: dict[str, Any]) -> dg.AssetsDefinition:
    sharded = settings.shards > 1
    description = (
        "Per-sample compressed size and ratio. Scores of samples whose content is unchanged are reused from the "
        "previous materialization: a small data change rescores only what changed."
    )
    if sharded:
        description += (
            f" Partitioned into {settings.shards} content-hash shards, each scored by its own run: a shard whose "
            "samples did not change reuses its stored scores whole."
        )

    description += (
        " The quality gate's signals and verdict per sample are stored beside the sizes: an excluded sample (its "
        "reason and the signal's value in the file) is offered to no method."
    )
    scores_key = settings.key("compression_scores")
    quality_spec = dg.AssetCheckSpec(
        "quality",
        asset=scores_key,
        partitions_def=settings.shard_partitions,  # an evaluation per shard
        description="Warns when a new data version's share of samples excluded by the quality gate rises by more "
        f"than {settings.quality_jump:.1%} over the previous version's (a source that arrived full of noise), "
        "naming the top reasons and files. Evaluated in the scores' own step.",
    )

    @dg.asset(
        name="compression_scores",
        deps=[settings.key("pool")],
        partitions_def=settings.shard_partitions,
        code_version="compression-scores-2",
        kinds={"polars", "parquet", settings.compressor},
        check_specs=[quality_spec],
        description=description,
        **common,
    )
    def compression_scores(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        workspace = entropy_storage.workspace(settings.name, context.log)
        pool = required(context.instance, settings.key("pool"), PoolResult)
        shard = context.partition_key if sharded else None
        previous = latest(context.instance, scores_key, ScoresResult, shard)
        if shard is None:
            result = score_pool(workspace, pool, settings.scoring, previous)
        else:
            result = score_shard(workspace, pool, settings.scoring, shard, previous)
        passed, summary = judge_exclusions(result, previous, settings.quality_jump)
        check = dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=summary,
            metadata={"excluded_share": result.excluded_share, "excluded_samples": sum(result.excluded.values())},
        )
        return materialized(result, checks=[check])

    return compression_scores


@deliberate_previews()
def shard_selection_asset(settings: SelectionPipeline, common: dict[str, Any]) -> dg.AssetsDefinition:
    scores_key = settings.key("compression_scores")
    by_shard = None if len(settings.budgets) == 1 else dg.MultiToSingleDimensionPartitionMapping("shard")

    @dg.asset(
        name="shard_selection",
        deps=[settings.key("pool"), dg.AssetDep(scores_key, partition_mapping=by_shard)],
        partitions_def=settings.shard_selection_partitions,
        code_version="shard-selection-1",
        kinds={"polars", "parquet"},
        description="zip_hierarchical's selection within one content-hash shard (at one budget): ZIP over the "
        f"shard's samples alone, keeping {settings.hierarchical_oversample} times its share of the budget for the "
        "final pass. A partition per shard, so that any executor runs the shards as separate steps, each reading "
        "only its shard and its scores; a shard whose samples did not change keeps its winners, and one that "
        "changed starts warm from them.",
        **common,
    )
    def shard_selection(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        workspace = entropy_storage.workspace(settings.name, context.log)
        instance = context.instance
        pool = required(instance, settings.key("pool"), PoolResult)
        shard, budget = settings.shard_partition(context.partition_key)
        scores = latest(instance, scores_key, ScoresResult, shard)
        previous = latest(instance, settings.key("shard_selection"), ShardSelectionResult, context.partition_key)
        subset = settings.hierarchical_subset(budget)
        result = select_shard(workspace, pool, scores, settings.scoring, shard, subset, previous)
        return materialized(result, data_version=result.version)

    return shard_selection


@deliberate_previews()
def subset_asset(settings: SelectionPipeline, common: dict[str, Any]) -> dg.AssetsDefinition:
    scores_key = settings.key("compression_scores")
    subset_key = settings.key("selected_subset")
    composition_spec = dg.AssetCheckSpec(
        "composition",
        asset=subset_key,
        blocking=settings.composition_blocking,
        partitions_def=settings.partitions,  # an evaluation per subset partition
        description="Checks that a subset keeps its pool's mix: for each facet (source file, record format, "
        f"dominant script, length; judged: {', '.join(settings.composition_facets)}), the total variation distance "
        f"of the two mixes is at most {settings.composition_threshold}. Evaluated in the subset's own step.",
    )

    deps = [settings.key("pool"), dg.AssetDep(scores_key, partition_mapping=dg.AllPartitionMapping())]
    if settings.selects_shards:  # zip_hierarchical's final pass reads every shard's winners at its budget
        deps.append(dg.AssetDep(settings.key("shard_selection"), partition_mapping=dg.AllPartitionMapping()))

    @dg.asset(
        name="selected_subset",
        # Every subset reads every shard of the scores.
        deps=deps,
        partitions_def=settings.partitions,
        code_version=SUBSET_CODE_VERSION,
        kinds={"polars", "parquet"},
        check_specs=[composition_spec],
        freshness_policy=settings.freshness_policy,
        description="A subset chosen by one method (ZIP or a baseline) at one budget: the chosen ids with "
        "per-sample provenance (round, stage scores, marginal compressed bytes), and the subset written back "
        f"in its records' original form ({settings.export_suffix}), ready for a trainer.",
        **common,
    )
    def selected_subset(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        workspace = entropy_storage.workspace(settings.name, context.log)
        pool = required(context.instance, settings.key("pool"), PoolResult)
        instance = context.instance
        if settings.shards > 1:
            scores: Any = {shard: latest(instance, scores_key, ScoresResult, shard) for shard in _shards(settings)}
        else:
            scores = required(context.instance, scores_key, ScoresResult)
        previous = latest(context.instance, subset_key, SubsetResult, context.partition_key)
        subset = settings.subset(context.partition_key)
        winners = None
        if settings.selects_shards and subset.method == "zip_hierarchical":
            shard_key = settings.key("shard_selection")
            latest_winners = {
                shard: latest(
                    instance, shard_key, ShardSelectionResult, settings.shard_partition_key(shard, subset.budget)
                )
                for shard in _shards(settings)
            }
            winners = gather_winners(workspace, pool, settings.scoring, subset, latest_winners)
        result = select_subset(workspace, pool, scores, subset, settings.scoring, previous, winners)
        judged = {
            facet: mixed for facet, mixed in (result.composition or {}).items() if facet in settings.composition_facets
        }
        check = composition_check_result(judged, settings.composition_threshold, settings.composition_severity)
        return materialized(result, data_version=result.version, checks=[check])

    return selected_subset


def composition_check_result(mixes: Mapping[str, FacetMix], threshold: float, severity: str) -> dg.AssetCheckResult:
    """Whether a subset's ``mixes`` are within ``threshold`` of its pool's on every facet."""
    passed, summary = judge_composition(mixes, threshold)
    distances = {f"tvd_{facet}": mixed.distance for facet, mixed in mixes.items()}
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN,
        description=summary,
        metadata=distances,
    )


def _shards(settings: SelectionPipeline) -> list[str]:
    partitions = settings.shard_partitions
    return partitions.get_partition_keys() if partitions is not None else []
