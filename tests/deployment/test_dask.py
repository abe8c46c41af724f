"""The selection graph on the dask executor, on a local cluster of two worker processes, with real data."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from entropy_assets.dagster.events import latest
from entropy_assets.stages import PoolResult, ScoresResult, ShardSelectionResult, SubsetResult

from .jobs import (
    BUDGET,
    POOL,
    RAW_FILES,
    SCORES,
    SUBSET,
    WINNERS,
    compute_log_failures,
    copy_raw_files,
    dask_cluster,
    reconstructable_selection_job,
    run_partitions,
    run_selection,
)

pytest.importorskip("dagster_dask", reason="needs the distributed extra: pip install 'entropy-assets[distributed]'")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
pytestmark = pytest.mark.dask_cluster


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    """The tests' cluster (``dask_cluster``), closed after them."""
    with dask_cluster() as address:
        yield address


def test_the_workers_do_not_inherit_an_ignored_sigterm(scheduler_address: str) -> None:
    """The cluster was started from a process that ignores SIGTERM (``dask_cluster``); its workers must not, or the
    ``tail -F`` of every step's log capture could not be stopped."""
    from dask.distributed import Client

    with Client(scheduler_address) as client:
        actions = client.run(signal.getsignal, signal.SIGTERM)
    assert list(actions.values()) == [signal.SIG_DFL] * 2


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
        assert compute_log_failures(events) == []

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


def test_shard_selections_run_as_steps_of_their_own_on_a_dask_cluster(
    raw_dir: Path, tmp_path: Path, scheduler_address: str
) -> None:
    """Each shard is a partition: its scores and its zip_hierarchical selection are two steps of the shard's run,
    and the shards' runs go to the cluster side by side (two at once, as a backfill launches them). The final pass
    then selects among the shards' winners in the subset's own step."""
    data = copy_raw_files(raw_dir, tmp_path / "data")
    store = tmp_path / "store"
    run_config = yaml.safe_load((DEPLOY / "dask" / "existing_cluster.yaml").read_text())
    run_config["execution"]["config"]["cluster"]["existing"]["address"] = scheduler_address
    scores_job = reconstructable_selection_job(str(data), str(store), "dask", shards=2)
    subsets_job = reconstructable_selection_job(str(data), str(store), "dask", shards=2, subsets=True)
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        run_selection(scores_job, instance, [POOL], run_config=run_config)
        shard_steps = run_partitions(scores_job, instance, [SCORES, WINNERS], ["0", "1"], run_config=run_config)
        events: list[dg.DagsterEvent] = []
        for method in ("zip_hierarchical", "random"):
            events += run_selection(subsets_job, instance, [SUBSET], method, run_config=run_config)
        assert compute_log_failures(events) == []
        steps = [step for run in shard_steps for step in run]
        steps += [(e.step_key, e.pid) for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert sorted(key for key, _ in steps) == sorted(
            ["t__compression_scores", "t__shard_selection"] * 2 + ["t__selected_subset"] * 2
        )
        assert all(pid != os.getpid() for _, pid in steps)  # every step ran on a dask worker

        shards = [latest(instance, SCORES, ScoresResult, shard) for shard in ("0", "1")]
        assert sum(pl.read_parquet(store / s.file).height for s in shards if s) == sum(RAW_FILES.values())
        winners = [latest(instance, WINNERS, ShardSelectionResult, shard) for shard in ("0", "1")]
        assert all(w is not None and w.winners == BUDGET for w in winners)  # twice its share: 2 * 40 / 2
        offered = {sample for w in winners if w for sample in pl.read_parquet(store / w.file)["id"].to_list()}
        for method in ("zip_hierarchical", "random"):
            subset = latest(instance, SUBSET, SubsetResult, method)
            assert subset is not None and pl.read_parquet(store / subset.file).height == BUDGET
        hierarchical = latest(instance, SUBSET, SubsetResult, "zip_hierarchical")
        assert hierarchical is not None and hierarchical.config["shards"] == 2
        assert set(pl.read_parquet(store / hierarchical.file)["id"].to_list()) <= offered


def test_a_cluster_started_for_a_run_ends_with_the_run(raw_dir: Path, tmp_path: Path) -> None:
    """``deploy/dask/run_config.yaml`` (``cluster: local:``) starts two worker processes for the run, which dagster-dask
    left running until this process ended; none outlives the run now."""
    psutil = pytest.importorskip("psutil")
    data = copy_raw_files(raw_dir, tmp_path / "data")
    run_config = yaml.safe_load((DEPLOY / "dask" / "run_config.yaml").read_text())
    job = reconstructable_selection_job(str(data), str(tmp_path / "store"), "dask")
    before = {process.pid for process in psutil.Process().children(recursive=True)}
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        events = run_selection(job, instance, [POOL], run_config=run_config)
    (step,) = [e for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
    assert step.pid != os.getpid()  # on a worker of the run's cluster
    left = [
        " ".join(process.cmdline())
        for process in psutil.Process().children(recursive=True)
        if process.pid not in before and "multiprocessing.resource_tracker" not in " ".join(process.cmdline())
    ]
    assert left == []
