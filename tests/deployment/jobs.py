"""The selection pipeline's graph as a job that other processes can rebuild (dask workers, step subprocesses).

Every test in this folder builds its job here, so that a change of settings (say, sharded scores) is made once.
The job is rebuilt in each worker from ``reconstructable_selection_job``'s JSON arguments, not pickled.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg

from entropy_assets.dagster import EntropyStorage, SelectionPipeline, executor_named, selection_pipeline_defs

NAME = "t"
POOL = dg.AssetKey([NAME, "pool"])
SCORES = dg.AssetKey([NAME, "compression_scores"])
SUBSET = dg.AssetKey([NAME, "selected_subset"])
WINNERS = dg.AssetKey([NAME, "shard_selection"])
BUDGET = 40
JOB_NAME = "select"
RAW_FILES = {"fastchat_dummy_conversation.json": 500, "pretrain_c4_demo.jsonl": 300}
"""The real files the tests copy, and how many records each holds."""


def copy_raw_files(raw_dir: Path, folder: Path) -> Path:
    """Copies ``RAW_FILES`` from the shared raw data into ``folder``; returns it."""
    folder.mkdir(parents=True)
    for name in RAW_FILES:
        shutil.copy(raw_dir / name, folder)
    return folder


@contextlib.contextmanager
def dask_cluster() -> Iterator[str]:
    """A local cluster of two single-threaded worker processes, closed afterwards; yields its scheduler's address.

    It is started the way a test session that a script launched in the background starts it: from a process that
    ignores SIGTERM, which is what Dagster leaves behind after a run where SIGINT is ignored. Its workers must not
    inherit that (see ``local_cluster``): each step of theirs then waited a minute and left two ``tail -F`` running."""
    from entropy_assets.dagster.dask_executor import local_cluster

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cluster = local_cluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    with cluster:
        yield cluster.scheduler_address


def pipeline_settings(data_dir: str, shards: int = 1) -> SelectionPipeline:
    """Small budgets and ZIP stages, so that a run takes seconds; no sensors. Sharded, ZIP is hierarchical."""
    return SelectionPipeline(
        name=NAME,
        paths=[data_dir],
        methods=("zip_hierarchical" if shards > 1 else "zip", "random"),
        shards=shards,
        budgets=(BUDGET,),
        k1=200,
        k2=40,
        k3=20,
        automation=False,
    )


def selection_job(data_dir: str, storage_dir: str, executor: str, shards: int = 1) -> dg.JobDefinition:
    """pool -> compression_scores -> selected_subset on the executor called ``executor`` (see ``executor_named``).
    Sharded, the job holds pool, the scores' shards and zip_hierarchical's shard selections (partitioned alike):
    subsets are partitioned otherwise (``subset_job``)."""
    keys = [POOL, SCORES, WINNERS] if shards > 1 else [POOL, SCORES, SUBSET]
    return _job(data_dir, storage_dir, executor, shards, keys)


def subset_job(data_dir: str, storage_dir: str, executor: str, shards: int = 1) -> dg.JobDefinition:
    """selected_subset alone, for a sharded pipeline."""
    return _job(data_dir, storage_dir, executor, shards, [SUBSET])


def _job(data_dir: str, storage_dir: str, executor: str, shards: int, keys: list[dg.AssetKey]) -> dg.JobDefinition:
    settings = pipeline_settings(data_dir, shards)
    defs = selection_pipeline_defs(settings, storage=EntropyStorage(base_path=storage_dir))
    job = dg.define_asset_job(JOB_NAME, selection=keys)
    return dg.Definitions(
        assets=defs.assets, resources=defs.resources, jobs=[job], executor=executor_named(executor)
    ).resolve_job_def(JOB_NAME)


def reconstructable_selection_job(
    data_dir: str, storage_dir: str, executor: str, shards: int = 1, *, subsets: bool = False
) -> dg.ReconstructableJob:
    """``selection_job`` (or ``subset_job``) as a job that a worker process rebuilds by importing this module."""
    return dg.build_reconstructable_job(
        __name__,
        (subset_job if subsets else selection_job).__name__,
        reconstructable_kwargs={
            "data_dir": data_dir,
            "storage_dir": storage_dir,
            "executor": executor,
            "shards": shards,
        },
        reconstructor_working_directory=str(Path(__file__).resolve().parents[1]),
    )


def run_selection(
    job: dg.ReconstructableJob,
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey],
    partition: str | None = None,
    *,
    run_config: dict | None = None,
) -> list[dg.DagsterEvent]:
    """Materializes ``keys`` (of one ``selected_subset`` partition, if given) in one run; raises if a step fails.
    Returns the run's events."""
    tags = {"dagster/partition": partition} if partition else None
    with dg.execute_job(
        job, instance, run_config=run_config, tags=tags, asset_selection=keys, raise_on_error=True
    ) as result:
        assert result.success
        return list(result.all_events)


def compute_log_failures(events: list[dg.DagsterEvent]) -> list[str]:
    """The engine events that say a step's compute-log capture failed to end (its ``tail -F`` would not stop)."""
    return [
        e.message or ""
        for e in events
        if e.event_type == dg.DagsterEventType.ENGINE_EVENT and "compute log" in (e.message or "")
    ]


def run_partitions(
    job: dg.ReconstructableJob,
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey],
    partitions: list[str],
    *,
    run_config: dict | None = None,
) -> list[list[tuple[str, int]]]:
    """Materializes ``keys`` for each of ``partitions``, a run each, the runs side by side (as a backfill launches
    them): each run from a process of its own, since Dagster's execution is not safe across threads of one process.
    Returns each run's successful steps, as (step key, process id)."""
    # Not multiprocessing's pool: its workers are daemonic, and a run's executor may start processes of its own.
    ref = instance.get_ref()
    with ProcessPoolExecutor(len(partitions), mp_context=multiprocessing.get_context("spawn")) as runs:
        return list(runs.map(_steps_of_run, *zip(*[(job, ref, keys, p, run_config) for p in partitions], strict=True)))


def _steps_of_run(
    job: dg.ReconstructableJob,
    instance_ref: Any,
    keys: list[dg.AssetKey],
    partition: str,
    run_config: dict | None,
) -> list[tuple[str, int]]:
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        events = run_selection(job, instance, keys, partition, run_config=run_config)
    return [(e.step_key, e.pid) for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
