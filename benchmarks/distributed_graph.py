"""The selection graph at one million samples through Dagster, on the multiprocess executor and on a dask
``LocalCluster`` of two single-threaded workers: wall time of each phase and the largest process (issue 17).

The graph is the factory's (``selection_pipeline_defs``) with ``--shards`` shards and ``--methods``
(zip_hierarchical and random by default; random at ``--random-seeds`` seeds) at ``--budget``. Runs, as a backfill
launches them: the pool; then one run per shard holding its two steps, the shard's ``compression_scores`` and its
``shard_selection`` (two runs at a time, each from a process of its own); then the subsets, two at a time. The
samples are ``million_samples.py``'s (run it first, or pass ``--records``).

Usage: ``python benchmarks/distributed_graph.py [--records DIR] [--shards 8] [--budget 10000]
[--executors multiprocess,dask] [--methods zip_hierarchical random ...] [--random-seeds N]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg

from entropy_assets.dagster import EntropyStorage, SelectionPipeline, executor_named, selection_pipeline_defs
from entropy_assets.scoring import shard_keys

HERE = Path(__file__).resolve().parent
NAME = "million"
POOL, SCORES, WINNERS, SUBSET = (
    dg.AssetKey([NAME, name]) for name in ("pool", "compression_scores", "shard_selection", "selected_subset")
)
SPAWN = multiprocessing.get_context("spawn")


def selection_job(
    data_dir: str,
    storage_dir: str,
    executor: str,
    shards: int,
    budget: int,
    subsets: bool,
    methods: tuple[str, ...] = ("zip_hierarchical", "random"),
    random_seeds: int = 1,
) -> dg.JobDefinition:
    """The factory's graph (no sensors) on ``executor``: the pool and the shards' steps, or (``subsets``) the subsets,
    which are partitioned otherwise (a job's assets share one partitioning)."""
    settings = SelectionPipeline(
        name=NAME,
        paths=[data_dir],
        methods=methods,
        random_seeds=random_seeds,
        shards=shards,
        budgets=(budget,),
        automation=False,
    )
    defs = selection_pipeline_defs(settings, storage=EntropyStorage(base_path=storage_dir))
    job = dg.define_asset_job("select", selection=[SUBSET] if subsets else [POOL, SCORES, WINNERS])
    definitions = dg.Definitions(
        assets=defs.assets, resources=defs.resources, jobs=[job], executor=executor_named(executor)
    )
    return definitions.resolve_job_def("select")


def _run(
    arguments: dict[str, Any], instance_ref: Any, keys: list[dg.AssetKey], partition: str | None, config: Any
) -> tuple[float, float]:
    """One run, from this process: its wall time, and the largest step process it waited for (MB)."""
    arguments = {**arguments, "subsets": keys == [SUBSET]}
    job = dg.build_reconstructable_job(
        "distributed_graph",
        "selection_job",
        reconstructable_kwargs=arguments,
        reconstructor_working_directory=str(HERE),
    )
    started = time.perf_counter()
    tags = {"dagster/partition": partition} if partition else None
    with (
        dg.DagsterInstance.from_ref(instance_ref) as instance,
        dg.execute_job(job, instance, run_config=config, tags=tags, asset_selection=keys) as result,
    ):
        if not result.success:
            raise RuntimeError(f"run of {keys} [{partition}] failed")
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def runs(
    arguments: dict[str, Any],
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey],
    partitions: list[str | None],
    config: Any,
    parallel: int,
) -> tuple[float, list[tuple[float, float]]]:
    """Runs of ``keys``, one per partition, ``parallel`` at a time; the wall time and each run's figures."""
    started = time.perf_counter()
    # Not multiprocessing's pool: its workers are daemonic, and a run's executor starts processes of its own.
    with ProcessPoolExecutor(parallel, mp_context=SPAWN, max_tasks_per_child=1) as pool:
        ref = instance.get_ref()
        figures = list(pool.map(_run, *zip(*[(arguments, ref, keys, p, config) for p in partitions], strict=True)))
    return time.perf_counter() - started, figures


def worker_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    executor: str, data: Path, workdir: Path, shards: int, budget: int, methods: list[str], random_seeds: int
) -> dict[str, Any]:
    store, home = workdir / f"store-{executor}", workdir / f"home-{executor}"
    for folder in (store, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    arguments = {"data_dir": str(data), "storage_dir": str(store), "executor": executor, "shards": shards}
    arguments.update(budget=budget, methods=tuple(methods), random_seeds=random_seeds)
    extra = [f"random_seed{seed}" for seed in range(1, random_seeds)] if "random" in methods else []
    cluster = None
    config: dict[str, Any] | None = None
    if executor == "dask":
        from dask.distributed import LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        config = {"execution": {"config": {"cluster": {"existing": {"address": cluster.scheduler_address}}}}}
    phases: dict[str, Any] = {}
    try:
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            started = time.perf_counter()
            phases["pool"] = runs(arguments, instance, [POOL], [None], config, 1)
            phases["shards (scores + shard_selection)"] = runs(
                arguments, instance, [SCORES, WINNERS], list(shard_keys(shards)), config, 2
            )
            phases[f"subsets ({len(methods) + len(extra)})"] = runs(
                arguments, instance, [SUBSET], [*methods, *extra], config, 2
            )
            total = time.perf_counter() - started
        peak = max(run[1] for _, figures in phases.values() for run in figures)
        if cluster is not None:
            from dask.distributed import Client

            with Client(cluster) as client:
                peak = max(peak, *client.run(worker_peak_mb).values())
    finally:
        if cluster is not None:
            cluster.close()
    return {"phases": {name: wall for name, (wall, _) in phases.items()}, "total": total, "peak_mb": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(tempfile.gettempdir()) / "entropy_million" / "records-1000000-seed0-v1"
    parser.add_argument("--records", default=str(default), help="a folder of JSONL files (million_samples.py's)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--executors", default="multiprocess,dask")
    parser.add_argument("--methods", nargs="+", default=["zip_hierarchical", "random"])
    parser.add_argument("--random-seeds", type=int, default=1)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "entropy_distributed"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    for file in sorted(Path(args.records).glob("*.jsonl")):
        (data / file.name).symlink_to(file)
    results = {
        name: measure(name, data, workdir, args.shards, args.budget, args.methods, args.random_seeds)
        for name in args.executors.split(",")
    }
    names = list(results)
    print(f"\n{'phase':<40}" + "".join(f"{name:>14}" for name in names))
    for phase in results[names[0]]["phases"]:
        print(f"{phase:<40}" + "".join(f"{results[name]['phases'][phase]:>13.1f}s" for name in names))
    print(f"{'all runs':<40}" + "".join(f"{results[name]['total']:>13.1f}s" for name in names))
    print(f"{'largest process (MB)':<40}" + "".join(f"{results[name]['peak_mb']:>14.0f}" for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
