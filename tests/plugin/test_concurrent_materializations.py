"""Materializations running at once in separate processes against one Dagster instance and one storage, and
materializations racing a data change: no output is mixed, lost or half-written."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from entropy_assets.dagster import SelectionPipeline
from entropy_assets.dagster.events import materializations, metadata_values
from entropy_assets.sources import load_pool
from entropy_assets.versions import data_version

from .test_pipeline import POOL, RAW, SCORES, SUBSET, Graph

CHILD = Path(__file__).resolve().parents[1] / "data" / "materialize_partition.py"
SETTINGS: dict[str, Any] = {
    "name": "t",
    "methods": ["zip", "random", "dedup"],
    "budgets": [60],
    "k1": 200,
    "k2": 40,
    "k3": 20,
    "automation": False,
}


class Home:
    """A Dagster home (default local storage: sqlite) and an output folder shared by every process of a test."""

    def __init__(self, tmp_path: Path, data: Path, **overrides: Any) -> None:
        self.home, self.store = tmp_path / "dagster_home", tmp_path / "store"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
        self.settings = {**SETTINGS, "paths": [str(data)], **overrides}

    def start(self, keys: list[dg.AssetKey], partition: str | None = None) -> subprocess.Popen[str]:
        """A child process materializing ``keys`` (and ``partition``); it has started once this returns."""
        command = [sys.executable, str(CHILD), json.dumps(self.settings), str(self.store)]
        command += [json.dumps([key.to_user_string() for key in keys]), *([partition] if partition else [])]
        env = {**os.environ, "DAGSTER_HOME": str(self.home)}
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, keys: list[dg.AssetKey], partition: str | None = None) -> None:
        """Materialize in this process (against the same instance and storage), for the steps around a race."""
        pipeline = SelectionPipeline(**self.settings)
        with self.instance() as instance:
            Graph(pipeline, self.store, instance).run(keys, partition)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def outputs(self, key: dg.AssetKey, partition: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every materialization of ``key`` (and ``partition``), oldest first."""
        with self.instance() as instance:
            return [metadata_values(record) for record in materializations(instance, key, partition)]


def finish_all(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        _out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]


def temporary_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.startswith(".") or path.suffix == ".tmp"]


def reference_subsets(data: Path, tmp_path: Path, methods: list[str]) -> dict[str, pl.DataFrame]:
    """Each method's subset table, materialized one at a time in this process."""
    pipeline = SelectionPipeline(**{**SETTINGS, "paths": [str(data)]})
    graph = Graph(pipeline, tmp_path / "reference", dg.DagsterInstance.ephemeral())
    graph.refresh()
    return {m: pl.read_parquet(str(graph.metadata(graph.run([SUBSET], m), SUBSET)["path"])) for m in methods}


def test_different_partitions_at_once_are_each_whole_and_equal_to_one_at_a_time(data_dir: Path, tmp_path: Path):
    home = Home(tmp_path, data_dir)
    home.run([RAW])
    home.run([POOL, SCORES])
    methods = ["zip", "random", "dedup"]
    finish_all([home.start([SUBSET], method) for method in methods])

    expected = reference_subsets(data_dir, tmp_path, methods)
    for method in methods:
        (output,) = home.outputs(SUBSET, method)
        table = pl.read_parquet(home.store / output["file"])
        assert table.equals(expected[method]), method
        assert output["size"] == 60 and len(table) == 60
        export = Path(str(output["export"])).read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in export] and len(export) == 60
    assert temporary_files(home.store) == []


def test_the_same_partition_twice_at_once_leaves_one_whole_version(data_dir: Path, tmp_path: Path) -> None:
    home = Home(tmp_path, data_dir)
    home.run([RAW])
    home.run([POOL, SCORES])
    finish_all([home.start([SUBSET], "zip") for _ in range(2)])
    first, second = home.outputs(SUBSET, "zip")
    assert first["file"] == second["file"] and first["version"] == second["version"]
    table = pl.read_parquet(home.store / first["file"])
    assert table.equals(reference_subsets(data_dir, tmp_path, ["zip"])["zip"])
    assert sorted(p.name for p in (home.store / "t" / "selected_subset" / "zip_60").iterdir()) == sorted(
        f"{first['version']}{suffix}" for suffix in (".parquet", ".rows.parquet", ".jsonl", ".ratio_histogram.png")
    )
    assert temporary_files(home.store) == []


def test_score_shards_at_once_cover_the_pool_exactly_once(data_dir: Path, tmp_path: Path) -> None:
    home = Home(tmp_path, data_dir, shards=3, methods=["zip_hierarchical", "random"])
    home.run([RAW])
    home.run([POOL])
    finish_all([home.start([SCORES], shard) for shard in ("0", "1", "2")])
    (pool_output,) = home.outputs(POOL)
    pool = pl.read_parquet(home.store / pool_output["file"])
    shards = [pl.read_parquet(home.store / home.outputs(SCORES, s)[0]["file"]) for s in ("0", "1", "2")]
    scores = pl.concat(shards)
    assert scores["id"].n_unique() == scores.height == pool.height
    assert set(scores["id"]) == set(pool["id"])
    assert all(temporary_files(home.store / "t" / "compression_scores" / s) == [] for s in ("0", "1", "2"))


@pytest.fixture
def alpaca_dir(raw_dir: Path, tmp_path: Path) -> Path:
    """Six Alpaca chunks (about 18,000 records: reading them takes seconds) and the C4 sample, to append to."""
    folder = tmp_path / "alpaca"
    folder.mkdir()
    for chunk in sorted(raw_dir.glob("alpaca52k_en_part0*.json"))[:6]:
        shutil.copy(chunk, folder)
    shutil.copy(raw_dir / "pretrain_c4_demo.jsonl", folder)
    return folder


def append_while_running(child: subprocess.Popen[str], target: Path, snapshots: Path) -> list[Path]:
    """Append records to ``target`` until ``child`` exits, each in two writes with a pause between (a reader may
    see half a line); after each whole record, copy the data as it then stands. Returns the copies, oldest first."""
    states = [_snapshot(target.parent, snapshots / "0")]
    count = 0
    while child.poll() is None and count < 200:
        line = json.dumps({"text": f"record {count} appended while the pool was being read"}) + "\n"
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line[:20])
            handle.flush()
            time.sleep(0.05)
            handle.write(line[20:])
        count += 1
        states.append(_snapshot(target.parent, snapshots / str(count)))
        time.sleep(0.1)
    return states


def _snapshot(data: Path, folder: Path) -> Path:
    shutil.copytree(data, folder)
    return folder


def test_a_pool_read_while_its_files_change_is_refused_or_matches_one_whole_state(
    alpaca_dir: Path, tmp_path: Path
) -> None:
    home = Home(tmp_path, alpaca_dir)
    home.run([RAW])
    child = home.start([POOL])
    states = append_while_running(child, alpaca_dir / "pretrain_c4_demo.jsonl", tmp_path / "states")
    _out, err = child.communicate(timeout=300)
    pool_folder = home.store / "t" / "pool"
    print(f"pool read during {len(states) - 1} appends: {'refused' if child.returncode else 'stored'}")
    if child.returncode != 0:  # the change was seen, or a read fell between a record's two writes: nothing stored
        assert re.search(r"changed while it was (being )?read|it is the last line, with no newline", err), err[-4000:]
        assert home.outputs(POOL) == []
        # no pool is stored; parts of the files that did not change may be
        assert not pool_folder.exists() or {entry.name for entry in pool_folder.iterdir()} <= {"parts", "part_features"}
    else:  # the read fell between two changes: what is stored is exactly one state of the data, named by it
        (output,) = home.outputs(POOL)
        versions = {data_version([str(state)]): state for state in states}
        assert output["version"] in versions
        stored = pl.read_parquet(home.store / output["file"])
        expected = load_pool([str(versions[output["version"]])]).frame
        assert stored.drop("id", "source").equals(expected.drop("id", "source"))
    # Once the data settles, the pool is its final state.
    home.run([RAW])
    home.run([POOL])
    final = home.outputs(POOL)[-1]
    assert final["version"] == data_version([str(states[-1])])
    stored = pl.read_parquet(home.store / final["file"])  # no part stored during the changes was of a torn file
    assert stored.drop("source").equals(load_pool([str(states[-1])]).frame.drop("source"))
    assert temporary_files(home.store) == []


def test_a_subset_selected_while_the_pool_is_replaced_reads_one_pool_version(alpaca_dir: Path, tmp_path: Path) -> None:
    """ZIP runs for seconds while a new data version's pool and scores land: the subset is either refused (its
    scores are no longer of the latest pool) or made wholly from the one pool version it names."""
    home = Home(tmp_path, alpaca_dir, budgets=[400], k1=2000, k2=200, k3=20)
    home.run([RAW])
    home.run([POOL, SCORES])
    (old_pool,) = home.outputs(POOL)
    child = home.start([SUBSET], "zip")
    with open(alpaca_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "a record of the next data version"}) + "\n")
    home.run([RAW])
    home.run([POOL, SCORES])
    _out, err = child.communicate(timeout=300)
    new_pool = home.outputs(POOL)[-1]
    print(f"subset during a pool change: {'refused' if child.returncode else 'stored'}")
    assert new_pool["version"] != old_pool["version"]
    if child.returncode != 0:
        assert "materialize it first" in err
        assert home.outputs(SUBSET, "zip") == []
    else:
        (subset,) = home.outputs(SUBSET, "zip")
        assert subset["pool_version"] in (old_pool["version"], new_pool["version"])
        pool = pl.read_parquet(home.store / str(subset["pool_file"]))
        table = pl.read_parquet(home.store / subset["file"])
        assert subset["pool_file"] == (old_pool if subset["pool_version"] == old_pool["version"] else new_pool)["file"]
        assert table.join(pool, on="id", how="anti").is_empty()  # every chosen id is in the pool it names
        assert (
            table.select("id", "content_hash")
            .join(pool.select("id", "content_hash"), on="id")
            .filter(pl.col("content_hash") != pl.col("content_hash_right"))
            .is_empty()
        )
    assert temporary_files(home.store) == []
