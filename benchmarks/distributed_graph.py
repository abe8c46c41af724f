"""The selection graph at one million samples through Dagster, on the multiprocess executor and on a dask
``LocalCluster`` of two single-threaded workers, with the instance on SQLite or PostgreSQL: wall time of each phase
and step, how long steps wait to start, and the peak memory of each dask worker and of the largest step process
(issues 17 and 25).

The graph is the factory's (``selection_pipeline_defs``) with ``--shards`` shards and ``--methods``
(zip_hierarchical and random by default; random at ``--random-seeds`` seeds) at ``--budget``. Runs, as a backfill
launches them: the pool; then one run per shard holding its two steps, the shard's ``compression_scores`` and its
``shard_selection`` (two runs at a time, each from a process of its own); then the subsets, two at a time. The
samples are ``million_samples.py``'s, built first where ``--records`` does not hold them.

PostgreSQL: the instance of ``deploy/postgres/dagster.yaml`` on the server at ``--postgres`` (default: the
``ENTROPY_ASSETS_TEST_POSTGRES`` that ``eval "$(bash scripts/postgres_server.sh start)"`` exports), a fresh database
per configuration, dropped afterwards.

Usage: ``python benchmarks/distributed_graph.py [--records DIR] [--samples 1000000] [--shards 8] [--budget 10000]
[--executors multiprocess,dask] [--instances sqlite,postgres] [--postgres URL] [--methods zip_hierarchical random ...]
[--random-seeds N]``
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from entropy_assets.dagster import EntropyStorage, SelectionPipeline, executor_named, selection_pipeline_defs
from entropy_assets.scoring import shard_keys

HERE = Path(__file__).resolve().parent
POSTGRES_YAML = HERE.parent / "deploy" / "postgres" / "dagster.yaml"
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
    """One run, from this process: its wall time, and the largest step process it waited for (MB; the
    multiprocess executor's step processes, none under dask)."""
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


def step_figures(instance: dg.DagsterInstance) -> tuple[dict[str, list[float]], list[float]]:
    """From the event log: each step's wall times by asset (STEP_START to STEP_SUCCESS), and how long each step
    waited to start (from its run's start, or from the end of the run's step before it)."""
    walls: dict[str, list[float]] = {}
    waits: list[float] = []
    for run in instance.get_runs():
        ready, started = None, {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.RUN_START:
                ready = record.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = record.timestamp
                if ready is not None:
                    waits.append(record.timestamp - ready)
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and event.step_key in started:
                asset = event.step_key.removeprefix(f"{NAME}__")
                walls.setdefault(asset, []).append(record.timestamp - started[event.step_key])
                ready = record.timestamp
    return walls, waits


@contextlib.contextmanager
def postgres_instance(url: str, home: Path) -> Iterator[dg.DagsterInstance]:
    """``deploy/postgres/dagster.yaml`` in ``home`` on a fresh database of the server at ``url``, which this process
    and every process it starts meanwhile (run processes, dask workers) reach through ``DAGSTER_PG_*``."""
    import psycopg2

    server = urlsplit(url)
    connect = {"host": server.hostname, "port": server.port or 5432, "user": server.username or "postgres"}
    connect["password"] = server.password or ""
    name = f"entropy_assets_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(dbname="postgres", **connect)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    variables = {
        "DAGSTER_PG_USERNAME": connect["user"],
        "DAGSTER_PG_PASSWORD": connect["password"],
        "DAGSTER_PG_HOST": connect["host"],
        "DAGSTER_PG_PORT": str(connect["port"]),
        "DAGSTER_PG_DB": name,
    }
    earlier = {variable: os.environ.get(variable) for variable in variables}
    os.environ.update(variables)
    shutil.copy(POSTGRES_YAML, home / "dagster.yaml")
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        for variable, value in earlier.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def open_instance(kind: str, home: Path, postgres: str | None) -> contextlib.AbstractContextManager[Any]:
    if kind == "sqlite":
        return dg.DagsterInstance.local_temp(str(home))
    if not postgres:
        raise SystemExit("--postgres (or ENTROPY_ASSETS_TEST_POSTGRES) is needed for the PostgreSQL instance")
    return postgres_instance(postgres, home)


def measure(
    executor: str,
    instance_kind: str,
    data: Path,
    workdir: Path,
    shards: int,
    budget: int,
    methods: list[str],
    random_seeds: int,
    postgres: str | None,
) -> dict[str, Any]:
    label = f"{executor}/{instance_kind}"
    store, home = workdir / f"store-{executor}-{instance_kind}", workdir / f"home-{executor}-{instance_kind}"
    for folder in (store, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    arguments = {"data_dir": str(data), "storage_dir": str(store), "executor": executor, "shards": shards}
    arguments.update(budget=budget, methods=tuple(methods), random_seeds=random_seeds)
    extra = [f"random_seed{seed}" for seed in range(1, random_seeds)] if "random" in methods else []
    config: dict[str, Any] | None = None
    phases: dict[str, Any] = {}
    workers: dict[str, float] = {}
    print(f"{label}: running", flush=True)
    with contextlib.ExitStack() as stack:
        # The instance first: the dask workers inherit the DAGSTER_PG_* variables that it sets.
        instance = stack.enter_context(open_instance(instance_kind, home, postgres))
        cluster = None
        if executor == "dask":
            from dask.distributed import Client

            from entropy_assets.dagster.dask_executor import local_cluster

            cluster = stack.enter_context(
                local_cluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            config = {"execution": {"config": {"cluster": {"existing": {"address": cluster.scheduler_address}}}}}
        started = time.perf_counter()
        phases["pool"] = runs(arguments, instance, [POOL], [None], config, 1)
        phases["shards (scores + shard_selection)"] = runs(
            arguments, instance, [SCORES, WINNERS], list(shard_keys(shards)), config, 2
        )
        phases[f"subsets ({len(methods) + len(extra)})"] = runs(
            arguments, instance, [SUBSET], [*methods, *extra], config, 2
        )
        total = time.perf_counter() - started
        walls, waits = step_figures(instance)
        if cluster is not None:
            with Client(cluster) as client:
                workers = client.run(worker_peak_mb)
    # Under dask the steps run in the workers: the run processes start none of their own.
    step_processes = max(run[1] for _, figures in phases.values() for run in figures) if executor != "dask" else None
    return {
        "phases": {name: wall for name, (wall, _) in phases.items()},
        "total": total,
        "steps": walls,
        "waits": waits,
        "workers_mb": workers,
        "step_processes_mb": step_processes,
    }


def records_folder(records: str | None, samples: int, seed: int = 0) -> Path:
    """``--records``, or million_samples.py's folder of ``samples`` records, built where it is missing."""
    if records:
        return Path(records)
    import million_samples

    workdir = Path(tempfile.gettempdir()) / "entropy_million"
    folder = workdir / f"records-{samples}-seed{seed}-v{million_samples.BUILD_VERSION}"
    if not (folder / "manifest.json").is_file():
        print(f"building {samples:,} samples in {folder}", flush=True)
        million_samples.in_fresh_process(million_samples.build_files, str(folder), samples, seed)
    return folder


def report(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    width = max(16, *(len(name) + 2 for name in names))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:<44}" + "".join(f"{cell:>{width}}" for cell in cells))

    print()
    row("", names)
    for phase in results[names[0]]["phases"]:
        row(phase, [f"{results[name]['phases'][phase]:.1f} s" for name in names])
    row("all runs", [f"{results[name]['total']:.1f} s" for name in names])
    print("steps (STEP_START to STEP_SUCCESS): runs, median, max")
    for step in ("pool", "compression_scores", "shard_selection", "selected_subset"):
        cells = []
        for name in names:
            walls = results[name]["steps"].get(step, [])
            cells.append(f"{len(walls)} x {statistics.median(walls):.1f} / {max(walls):.1f} s" if walls else "-")
        row(f"  {step}", cells)
    row(
        "wait to start a step: median / max",
        [f"{statistics.median(r['waits']):.2f} / {max(r['waits']):.1f} s" for r in results.values()],
    )
    row(
        "largest step process (multiprocess)",
        [f"{mb:,.0f} MB" if (mb := r["step_processes_mb"]) is not None else "-" for r in results.values()],
    )
    for index in range(2):
        cells = []
        for result in results.values():
            peaks = sorted(result["workers_mb"].values())
            cells.append(f"{peaks[index]:,.0f} MB" if index < len(peaks) else "-")
        row(f"dask worker {index + 1} peak RSS", cells)
    print("(one run of each configuration)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", help="a folder of JSONL files (default: million_samples.py's, built if missing)")
    parser.add_argument("--samples", type=int, default=1_000_000, help="samples to build where --records is not given")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--executors", default="multiprocess,dask")
    parser.add_argument("--methods", nargs="+", default=["zip_hierarchical", "random"])
    parser.add_argument("--random-seeds", type=int, default=1)
    parser.add_argument("--instances", default="sqlite", help="sqlite, postgres or both: sqlite,postgres")
    parser.add_argument("--postgres", default=os.environ.get("ENTROPY_ASSETS_TEST_POSTGRES"), help="server URL")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "entropy_distributed"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    files = sorted(records_folder(args.records, args.samples).glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no JSONL files in {args.records}")
    for file in files:
        (data / file.name).symlink_to(file)
    results = {
        f"{executor}/{kind}": measure(
            executor, kind, data, workdir, args.shards, args.budget, args.methods, args.random_seeds, args.postgres
        )
        for kind in args.instances.split(",")
        for executor in args.executors.split(",")
    }
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
