"""A ZIP subset killed mid-selection (SIGKILL, in a child process with a persistent Dagster instance) leaves every
earlier output intact, and materializing it again resumes from its checkpoint to the uninterrupted selection.

Run as a script, this file is the child: ``python test_interrupted_selection.py DATA STORAGE PARTITION``
materializes a subset in the instance at ``$DAGSTER_HOME`` and prints its metadata as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

import entropy_assets.stages.subset as subset_stage
from entropy_assets.dagster import EntropyStorage, SelectionPipeline, selection_pipeline_defs
from entropy_assets.dagster.events import latest
from entropy_assets.selection.base import PROVENANCE_SCHEMA
from entropy_assets.selection.zip import zip_select
from entropy_assets.stages import PoolResult

RAW = dg.AssetKey(["t", "raw_data"])
POOL = dg.AssetKey(["t", "pool"])
SCORES = dg.AssetKey(["t", "compression_scores"])
SUBSET = dg.AssetKey(["t", "selected_subset"])
BUDGET = 1200
CHUNKS = 3
"""9,407 Alpaca samples; 1,200 of them 10 a round: 120 rounds, a few seconds of selection."""
METADATA = "subset metadata: "


def settings(data_dir: Path) -> SelectionPipeline:
    return SelectionPipeline(
        name="t", paths=[str(data_dir)], methods=("zip", "random"), budgets=(BUDGET,), k1=1200, k2=100, k3=10
    )


def materialize(
    data_dir: Path, storage: Path, instance: dg.DagsterInstance, keys: list[dg.AssetKey], partition: str | None = None
) -> dg.ExecuteInProcessResult:
    defs = selection_pipeline_defs(settings(data_dir), storage=EntropyStorage(base_path=str(storage)))
    return dg.materialize(
        list(defs.assets or []),
        instance=instance,
        resources=dict(defs.resources or {}),
        selection=keys,
        partition_key=partition,
    )


def child_step(data_dir: str, storage: str, partition: str) -> None:
    """Materialize a subset partition in the instance at ``$DAGSTER_HOME``. The checkpoint is saved after every
    round (not every 2 s), so that kills land where the test says."""
    subset_stage.CHECKPOINT_SECONDS = 0.0
    with dg.DagsterInstance.get() as instance:
        result = materialize(Path(data_dir), Path(storage), instance, [SUBSET], partition)
    [event] = result.get_asset_materialization_events()
    values = {name: value.value for name, value in event.materialization.metadata.items()}
    print(METADATA + json.dumps({k: values[k] for k in ("file", "version", "resumed_from_round", "size")}))


class Child:
    """A subset materialized in a child process of its own."""

    def __init__(self, data_dir: Path, storage: Path, home: Path, partition: str) -> None:
        environment = {**os.environ, "DAGSTER_HOME": str(home)}
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(data_dir), str(storage), partition],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self) -> tuple[dict[str, object], str]:
        """Wait for the materialization; the subset's metadata and the run's log."""
        out, err = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, err[-3000:]
        [line] = [line for line in out.splitlines() if line.startswith(METADATA)]
        return json.loads(line[len(METADATA) :]), err

    def kill_after_saved_round(self, folder: Path, after: int, kill_when: Callable[..., None]) -> tuple[int, str]:
        """SIGKILL the materialization once its checkpoint holds more than ``after`` rounds; the rounds it holds,
        and the run's log until then."""
        kill_when(self.process, lambda: saved_rounds(folder) > after, within=90, what=f"a checkpoint past {after}")
        _, err = self.process.communicate(timeout=30)
        return saved_rounds(folder), err  # a save may have landed between the look and the kill


def saved_rounds(folder: Path) -> int:
    """Rounds held by the checkpoint in ``folder`` (0 when there is none)."""
    paths = list(folder.glob("*.checkpoint")) if folder.is_dir() else []
    if not paths:
        return 0
    try:
        with np.load(paths[0]) as saved:
            return int(saved["rounds"])
    except (OSError, ValueError, KeyError):  # removed by a selection finishing just now
        return 0


def test_a_killed_zip_selection_keeps_earlier_outputs_and_resumes_to_the_same_subset(
    raw_dir: Path, tmp_path: Path, kill_when: Callable[..., None]
) -> None:
    from .test_pipeline import files  # here: this file is also the child's script, outside the package

    data_dir, storage, home = tmp_path / "data", tmp_path / "store", tmp_path / "home"
    data_dir.mkdir()
    home.mkdir()
    for path in sorted(raw_dir.glob("alpaca52k_en_part*.json"))[:CHUNKS]:
        shutil.copy(path, data_dir)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialize(data_dir, storage, instance, [RAW])
        materialize(data_dir, storage, instance, [POOL, SCORES])
        materialize(data_dir, storage, instance, [SUBSET], "random")
    before = files(storage)
    zip_folder = storage / "t" / "selected_subset" / f"zip_{BUDGET}"

    # Killed once in the first run, once more in the run that resumes it.
    first, log = Child(data_dir, storage, home, "zip").kill_after_saved_round(zip_folder, 15, kill_when)
    assert "resumed from round" not in log
    second, log = Child(data_dir, storage, home, "zip").kill_after_saved_round(zip_folder, first + 30, kill_when)
    assert f"resumed from round {first} " in log
    assert 15 < first < second < BUDGET // 10

    after = files(storage)
    assert {name: after[name] for name in before} == before  # pool, scores and the random subset, byte for byte
    killed = {name for name in after if name not in before}
    # Only the checkpoint (and temporary files of a save the kill interrupted) exist for the killed subset.
    assert [name for name in killed if not Path(name).name.startswith(".")] == [
        str(next(zip_folder.glob("*.checkpoint")).relative_to(storage))
    ]
    assert all(Path(name).name.endswith(".tmp") for name in killed if Path(name).name.startswith("."))
    for name in before:  # and every earlier output still loads
        if name.endswith(".parquet"):
            assert pl.read_parquet(storage / name).height > 0
        elif name.endswith(".jsonl"):
            assert len([json.loads(line) for line in (storage / name).read_text().splitlines()]) == BUDGET
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_latest_materialization_event(SUBSET) is not None  # random's, not zip's
        zip_records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=SUBSET, asset_partitions=["zip"]), limit=1
        ).records
        assert zip_records == []

    metadata, log = Child(data_dir, storage, home, "zip").finish()
    assert metadata["resumed_from_round"] == second
    assert f"resumed from round {second} " in log
    assert metadata["size"] == BUDGET
    # The checkpoint is removed once the subset is written (a save the kill interrupted may leave a temporary file).
    assert [p.name for p in zip_folder.glob("*checkpoint*") if not p.name.startswith(".")] == []
    assert {name: p for name, p in files(storage).items() if name in before} == before

    # The resumed subset is the one an uninterrupted run selects.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pool = pl.read_parquet(storage / latest(instance, POOL, PoolResult).file)  # type: ignore[union-attr]
    config = settings(data_dir).selection_config("zip", BUDGET)
    uninterrupted = zip_select(pool, config)  # type: ignore[arg-type]
    stored = pl.read_parquet(storage / str(metadata["file"])).select(list(PROVENANCE_SCHEMA))
    assert_frame_equal(stored, uninterrupted.provenance)


if __name__ == "__main__":
    child_step(*sys.argv[1:4])
