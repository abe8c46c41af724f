"""The sensor that drives sharded scoring: after a new pool, it requests the shards of ``compression_scores`` whose
version changed, then the partitions of ``shard_selection`` (zip_hierarchical's shards) whose scores or settings
changed, then, once every shard is current, each subset made from an older pool. (Dagster's eager
condition does not carry an update across partitions definitions here: a subset partitioned by method is not
requested when shards of its scores land.)

A shard's scores are current when they were made from the same samples (the shard's fingerprint) with the same
compressor settings: their version is ``<fingerprint>.<settings hash>``.
"""

from __future__ import annotations

import dagster as dg

from entropy_assets.scoring import shard_keys
from entropy_assets.stages import (
    PoolResult,
    ScoresResult,
    ShardSelectionResult,
    SubsetResult,
    shard_versions,
    stale_shards,
)
from entropy_assets.stages.shard_selection import is_current, shard_settings_hash

from .events import latest
from .settings import SelectionPipeline


def shard_sensor(settings: SelectionPipeline) -> dg.SensorDefinition:
    """After a new pool: requests the shards of the scores whose version changed; then the stale partitions of
    ``shard_selection`` at each budget where any was made; once every shard is current, every ``selected_subset``
    partition made from an older pool. What was never materialized is left alone, as ``eager()`` leaves it."""
    name = settings.name
    pool_key, scores_key, subset_key = (settings.key(n) for n in ("pool", "compression_scores", "selected_subset"))
    # One job per partitions definition: a run targets partitions of one kind.
    score_job = dg.define_asset_job(f"{name}_score_shards", selection=[scores_key])
    select_job = dg.define_asset_job(f"{name}_select_subsets", selection=[subset_key])
    jobs = [score_job, select_job]
    winners_key = settings.key("shard_selection")
    winners_job = dg.define_asset_job(f"{name}_select_shards", selection=[winners_key])
    if settings.selects_shards:
        jobs.append(winners_job)

    @dg.sensor(
        name=f"{name}_rescore_shards",
        jobs=jobs,
        minimum_interval_seconds=settings.observe_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Rescores the shards of {scores_key.to_user_string()} that a new pool changed, then "
        f"re-selects {subset_key.to_user_string()} once every shard is current.",
    )
    def rescore_shards(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        pool = latest(instance, pool_key, PoolResult)
        fingerprints = pool.shard_fingerprints if pool is not None else None
        if pool is None or fingerprints is None or sorted(fingerprints) != shard_keys(settings.shards):
            return dg.SkipReason(f"no pool in {settings.shards} shards yet")
        expected = shard_versions(fingerprints, settings.scoring)
        stale = stale_shards(expected, {shard: latest(instance, scores_key, ScoresResult, shard) for shard in expected})
        if stale:
            return dg.SensorResult(
                run_requests=[
                    dg.RunRequest(run_key=f"{pool.version}:{shard}", job_name=score_job.name, partition_key=shard)
                    for shard in stale
                ]
            )
        if settings.selects_shards:
            winners = []
            for budget in settings.budgets:
                wanted = shard_settings_hash(settings.hierarchical_subset(budget))
                made = {shard: settings.shard_partition_key(shard, budget) for shard in expected}
                found = {shard: latest(instance, winners_key, ShardSelectionResult, key) for shard, key in made.items()}
                if not any(found.values()):
                    continue  # never selected at this budget: left alone, as subsets never made are
                for shard, version in expected.items():
                    if not is_current(found[shard], version, wanted):
                        run_key = f"{pool.version}:{made[shard]}"
                        request = dg.RunRequest(run_key=run_key, job_name=winners_job.name, partition_key=made[shard])
                        winners.append(request)
            if winners:
                return dg.SensorResult(run_requests=winners)
        requests = []
        for partition in settings.partitions.get_partition_keys():
            subset = latest(instance, subset_key, SubsetResult, partition)
            if subset is not None and subset.pool_version != pool.version:
                run_key = f"{pool.version}:{partition}"
                requests.append(dg.RunRequest(run_key=run_key, job_name=select_job.name, partition_key=partition))
        return (
            dg.SensorResult(run_requests=requests) if requests else dg.SkipReason("every shard and subset is current")
        )

    return rescore_shards
