"""The selection graph on the dask executor, on a local cluster of two worker processes, with real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from entropy_assets.dagster.events import latest
from entropy_assets.stages import PoolResult, ScoresResult, SubsetResult

from .jobs import BUDGET, POOL, RAW_FILES, SCORES, SUBSET, copy_raw_files, reconstructable_selection_job, run_selection

pytest.importorskip("dagster_dask", reason="needs the distributed extra: pip install 'entropy-assets[distributed]'")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    """A local cluster of two single-threaded worker processes, closed after the tests (a cluster that the executor
    starts itself from ``cluster: local:`` lives until the interpreter exits)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_the_graph_materializes_on_a_dask_cluster(raw_dir: Path, tmp_path: Path, scheduler_address: str) -> None:
    data = copy_raw_files(raw_dir, tmp_path / "data")
    store = tmp_path / "store"
    run_config = yaml.safe_load((DEPLOY / "dask" / "existing_cluster.yaml").read_text())
    run_config["execution"]["config"]["cluster"]["existing"]["address"] = scheduler_address
    job = reconstructable_selection_job(str(data), str(store), "dask")
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        events = run_selection(job, instance, [POOL, SCORES], run_config=run_config)
        for method in ("zip", "random"):
            events += run_selection(job, instance, [SUBSET], method, run_config=run_config)

        # Every step ran on a dask worker, not in this process.
        steps = [e for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert sorted(e.step_key for e in steps) == [
            "t__compression_scores",
            "t__pool",
            *["t__selected_subset"] * 2,  # each with its composition check, in the same step
        ]
        assert all(e.pid != os.getpid() for e in steps)

        pool = latest(instance, POOL, PoolResult)
        scores = latest(instance, SCORES, ScoresResult)
        assert pool is not None and scores is not None
        total = sum(RAW_FILES.values())
        assert pl.read_parquet(store / pool.file).height == total
        assert pl.read_parquet(store / scores.file).height == total
        assert scores.pool_version == pool.version
        for method in ("zip", "random"):
            subset = latest(instance, SUBSET, SubsetResult, method)
            assert subset is not None and subset.pool_version == pool.version
            provenance = pl.read_parquet(store / subset.file)
            assert provenance.height == BUDGET and provenance["id"].n_unique() == BUDGET
            assert len(Path(subset.export_path).read_text(encoding="utf-8").splitlines()) == BUDGET


def test_sharded_scores_and_hierarchical_zip_run_on_a_dask_cluster(
    raw_dir: Path, tmp_path: Path, scheduler_address: str
) -> None:
    """Each shard of the scores is a run of its own; hierarchical ZIP selects inside a (daemonic) dask worker."""
    data = copy_raw_files(raw_dir, tmp_path / "data")
    store = tmp_path / "store"
    run_config = yaml.safe_load((DEPLOY / "dask" / "existing_cluster.yaml").read_text())
    run_config["execution"]["config"]["cluster"]["existing"]["address"] = scheduler_address
    scores_job = reconstructable_selection_job(str(data), str(store), "dask", shards=2)
    subsets_job = reconstructable_selection_job(str(data), str(store), "dask", shards=2, subsets=True)
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        events = run_selection(scores_job, instance, [POOL, SCORES], "0", run_config=run_config)
        events += run_selection(scores_job, instance, [SCORES], "1", run_config=run_config)
        for method in ("zip_hierarchical", "random"):
            events += run_selection(subsets_job, instance, [SUBSET], method, run_config=run_config)
        steps = [e for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert len(steps) == 5 and all(e.pid != os.getpid() for e in steps)

        shards = [latest(instance, SCORES, ScoresResult, shard) for shard in ("0", "1")]
        assert sum(pl.read_parquet(store / s.file).height for s in shards if s) == sum(RAW_FILES.values())
        for method in ("zip_hierarchical", "random"):
            subset = latest(instance, SUBSET, SubsetResult, method)
            assert subset is not None and pl.read_parquet(store / subset.file).height == BUDGET
        hierarchical = latest(instance, SUBSET, SubsetResult, "zip_hierarchical")
        assert hierarchical is not None and hierarchical.config["shards"] == 2
        assert hierarchical.config["processes"] == 1  # a dask worker is daemonic: no child processes
