"""Sharded scoring in Dagster: which shards of ``compression_scores`` are current for the latest pool, the pool's
scores gathered from its shards, and the sensor that drives both.

A shard's scores are current when they were made from the same samples (the shard's fingerprint) with the same
compressor settings: their version is ``<fingerprint>.<settings hash>``. After a new pool, the sensor requests only
the shards whose version changed, then, once every shard is current, each subset made from an older pool. (Dagster's
eager condition does not carry an update across partitions definitions here: a subset partitioned by method is not
requested when shards of its scores land.)
"""

import hashlib
from typing import Any

import dagster as dg
import polars as pl

from entropy_assets.scoring import SCORES_SCHEMA, shard_keys
from entropy_assets.versions import shard_fingerprints

from .storage import EntropyStorage, latest_output


def pool_fingerprints(storage: EntropyStorage, pool_output: dict[str, Any], shards: int) -> dict[str, str]:
    """The fingerprint of each shard of a pool, as the pool recorded them (or computed, for a pool made before
    sharding was set)."""
    recorded = pool_output.get("shard_fingerprints")
    if isinstance(recorded, dict) and sorted(recorded) == shard_keys(shards):
        return {shard: str(fingerprint) for shard, fingerprint in recorded.items()}
    pool = pl.scan_parquet(str(storage.path(pool_output["file"]))).select("id", "content_hash").collect()
    return shard_fingerprints(pool, shards)


def scores_version(fingerprint: str, settings_hash: str) -> str:
    """The version of a shard's scores: its samples and the compressor settings."""
    return f"{fingerprint}.{settings_hash}"


def scores_versions(fingerprints: dict[str, str], settings_hash: str) -> dict[str, str]:
    """The version every shard's scores must have."""
    return {shard: scores_version(fingerprint, settings_hash) for shard, fingerprint in fingerprints.items()}


def stale_shards(
    instance: dg.DagsterInstance, scores_key: dg.AssetKey, versions: dict[str, str]
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The shards whose latest scores are not of the expected ``versions`` (missing, of older data or of other
    settings), and the latest scores output of every current shard."""
    stale, current = [], {}
    for shard, version in versions.items():
        output = latest_output(instance, scores_key, shard, required=False)
        if output is None or output.get("version") != version:
            stale.append(shard)
        else:
            current[shard] = output
    return stale, current


def pool_scores(
    instance: dg.DagsterInstance,
    storage: EntropyStorage,
    scores_key: dg.AssetKey,
    shards: int,
    settings_hash: str,
    pool_output: dict[str, Any],
    pool: pl.DataFrame,
) -> tuple[pl.DataFrame, str]:
    """The scores of every sample of ``pool`` (row for row) gathered from its shards, and their version. A shard
    not yet scored for this pool (or these settings) is an error that names it."""
    versions = scores_versions(pool_fingerprints(storage, pool_output, shards), settings_hash)
    stale, current = stale_shards(instance, scores_key, versions)
    if stale:
        raise ValueError(
            f"{scores_key.to_user_string()} shard(s) {', '.join(stale)} are not scored for pool version "
            f"{pool_output['version']} yet; materialize those partitions first"
        )
    scores = pl.concat([storage.read_parquet(output["file"]) for output in current.values()])
    aligned = pool.select("id").join(scores.unique("id", keep="first"), on="id", how="left", maintain_order="left")
    versions = "\n".join(str(current[shard]["version"]) for shard in sorted(current))
    return aligned.select(list(SCORES_SCHEMA)), hashlib.sha256(versions.encode()).hexdigest()[:24]


def shard_sensor(
    name: str,
    keys: tuple[dg.AssetKey, dg.AssetKey, dg.AssetKey],
    partitions: dg.PartitionsDefinition,
    settings_hash: str,
    interval_seconds: int,
) -> dg.SensorDefinition:
    """After a new pool: requests the shards of the scores whose version changed, and once every shard is current,
    every ``selected_subset`` partition made from an older pool. Subsets never materialized are left alone, as
    ``eager()`` leaves them."""
    pool_key, scores_key, subset_key = keys
    # One job per partitions definition: a run targets partitions of one kind.
    score_job = dg.define_asset_job(f"{name}_score_shards", selection=[scores_key])
    select_job = dg.define_asset_job(f"{name}_select_subsets", selection=[subset_key])

    @dg.sensor(
        name=f"{name}_rescore_shards",
        jobs=[score_job, select_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Rescores the shards of {scores_key.to_user_string()} that a new pool changed, then "
        f"re-selects {subset_key.to_user_string()} once every shard is current.",
    )
    def rescore_shards(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        pool_output = latest_output(context.instance, pool_key, required=False)
        if pool_output is None or not isinstance(pool_output.get("shard_fingerprints"), dict):
            return dg.SkipReason("no sharded pool yet")
        pool_version = pool_output["version"]
        versions = scores_versions(pool_output["shard_fingerprints"], settings_hash)
        stale, _ = stale_shards(context.instance, scores_key, versions)
        if stale:
            return dg.SensorResult(
                run_requests=[
                    dg.RunRequest(run_key=f"{pool_version}:{shard}", job_name=score_job.name, partition_key=shard)
                    for shard in stale
                ]
            )
        requests = []
        for partition in partitions.get_partition_keys():
            output = latest_output(context.instance, subset_key, partition, required=False)
            if output is not None and output.get("pool_version") != pool_version:
                run_key = f"{pool_version}:{partition}"
                requests.append(dg.RunRequest(run_key=run_key, job_name=select_job.name, partition_key=partition))
        return (
            dg.SensorResult(run_requests=requests) if requests else dg.SkipReason("every shard and subset is current")
        )

    return rescore_shards
