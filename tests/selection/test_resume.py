"""Checkpointed ZIP on a real pool: a run stopped after any round resumes to exactly the uninterrupted selection,
and checkpoints of other inputs, or unreadable ones, are ignored with a message."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import entropy_assets.selection.hierarchical as hierarchical_module
import entropy_assets.selection.zip as zip_module
from entropy_assets.compression import SET_SEPARATOR
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.hierarchical import HierarchicalConfig, hierarchical_zip_select
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import load_pool

ALPACA = "alpaca52k_en_part02_03252-06382.json"

CONFIGS = {
    "default_samples": ZipConfig(budget=300, k1=1000, k2=60, k3=20),
    "default_bytes": ZipConfig(budget=60000, k1=1000, k2=60, k3=20, budget_unit="bytes"),
    "paper_samples": ZipConfig.paper(budget=100, k1=400, k2=30, k3=10),
}


@pytest.fixture(scope="module")
def alpaca(raw_dir: Path) -> pl.DataFrame:
    """3130 Alpaca records as a pool."""
    return load_pool(raw_dir / ALPACA).frame


class Stop(Exception):
    """Stands for a kill: raised from the progress callback right after a round (and its save)."""


def stopped_after(pool: pl.DataFrame, config: ZipConfig, checkpoint: SelectionCheckpoint, rounds: int) -> None:
    """Run ZIP with ``checkpoint`` and stop it after ``rounds`` rounds."""
    done = []

    def progress(selected: int) -> None:
        done.append(selected)
        if len(done) == rounds:
            raise Stop

    with pytest.raises(Stop):
        zip_select(pool, config, progress, checkpoint=checkpoint)


def saved_after_each_round(pool: pl.DataFrame, config: ZipConfig, path: Path) -> tuple[pl.DataFrame, list[bytes]]:
    """An uninterrupted checkpointed run's provenance, and its checkpoint file as it was after each round."""
    snapshots: list[bytes] = []
    selection = zip_select(
        pool,
        config,
        lambda _: snapshots.append(path.read_bytes()),
        checkpoint=SelectionCheckpoint(path, every_seconds=0),
    )
    return selection.provenance, snapshots


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_run_resumed_after_any_round_selects_exactly_what_an_uninterrupted_run_selects(
    alpaca: pl.DataFrame, tmp_path: Path, name: str
) -> None:
    config = CONFIGS[name]
    uninterrupted = zip_select(alpaca, config)
    path = tmp_path / "zip.checkpoint"
    provenance, snapshots = saved_after_each_round(alpaca, config, path)
    assert_frame_equal(provenance, uninterrupted.provenance)  # checkpointing changes nothing
    rounds = uninterrupted.summary["rounds"]
    assert len(snapshots) == rounds >= 8
    for after in sorted({1, 2, rounds // 2, rounds - 1}):
        path.write_bytes(snapshots[after - 1])
        checkpoint = SelectionCheckpoint(path, every_seconds=0)
        resumed = zip_select(alpaca, config, checkpoint=checkpoint)
        assert resumed.summary["resumed_from_round"] == after
        assert_frame_equal(resumed.provenance, uninterrupted.provenance)
        assert resumed.summary["rounds"] == rounds and resumed.summary["selected"] == len(uninterrupted)


def test_a_run_resumes_between_rebuilds_of_the_whole_set_context(
    alpaca: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the threshold a round measures against the last whole-set context plus the samples chosen since: the
    # resumed run must rebuild that same split context, not one of the whole set.
    monkeypatch.setattr(zip_module, "_EXACT_CONTEXT_BYTES", 20_000)
    config = ZipConfig(budget=400, k1=1000, k2=60, k3=10)
    uninterrupted = zip_select(alpaca, config)
    path = tmp_path / "zip.checkpoint"
    provenance, snapshots = saved_after_each_round(alpaca, config, path)
    assert_frame_equal(provenance, uninterrupted.provenance)
    texts = alpaca["text"].to_list()
    split_next, rebuild_next = [], []  # rounds after which the next round keeps the last whole-set context, or not
    for after, snapshot in enumerate(snapshots, start=1):
        path.write_bytes(snapshot)
        with np.load(path) as saved:
            chosen = sum(len(texts[p].encode()) + len(SET_SEPARATOR) for p in saved["row_position"])
            whole = int(saved["whole_bytes"])
        if whole > 20_000:
            (split_next if chosen <= whole * (1 + zip_module._CONTEXT_GROWTH) else rebuild_next).append(after)
    assert len(split_next) >= 5 and len(rebuild_next) >= 2
    for after in (split_next[0], split_next[len(split_next) // 2], rebuild_next[0]):
        path.write_bytes(snapshots[after - 1])
        resumed = zip_select(alpaca, config, checkpoint=SelectionCheckpoint(path))
        assert resumed.summary["resumed_from_round"] == after
        assert_frame_equal(resumed.provenance, uninterrupted.provenance)


def test_a_checkpoint_of_other_inputs_or_settings_is_not_used(alpaca: pl.DataFrame, tmp_path: Path) -> None:
    config = CONFIGS["default_samples"]
    path = tmp_path / "zip.checkpoint"
    stopped_after(alpaca, config, SelectionCheckpoint(path, every_seconds=0), 5)
    changed_text = alpaca.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.col("text") + " (edited)").otherwise(pl.col("text")).alias("text")
    )
    for pool, settings in ((alpaca.head(3000), config), (changed_text, config), (alpaca, replace(config, k3=15))):
        messages: list[str] = []
        selection = zip_select(pool, settings, checkpoint=SelectionCheckpoint(path, 0, messages.append))
        assert selection.summary["resumed_from_round"] == 0
        assert messages == [f"checkpoint {path} is of other inputs or settings; ignoring it and starting afresh"]
        assert_frame_equal(selection.provenance, zip_select(pool, settings).provenance)
        stopped_after(alpaca, config, SelectionCheckpoint(path, every_seconds=0), 5)  # the original's again
    # Threads change no size: a checkpoint is used whatever n_jobs the rerun has.
    resumed = zip_select(alpaca, replace(config, n_jobs=1), checkpoint=SelectionCheckpoint(path))
    assert resumed.summary["resumed_from_round"] == 5


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_an_unreadable_checkpoint_is_ignored_with_a_message(alpaca: pl.DataFrame, tmp_path: Path, damage: str) -> None:
    config = CONFIGS["default_samples"]
    path = tmp_path / "zip.checkpoint"
    stopped_after(alpaca, config, SelectionCheckpoint(path, every_seconds=0), 3)
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[: len(whole) // 2], "garbage": b"not a checkpoint" * 50, "empty": b""}[damage])
    messages: list[str] = []
    selection = zip_select(alpaca, config, checkpoint=SelectionCheckpoint(path, 0, messages.append))
    assert selection.summary["resumed_from_round"] == 0
    assert len(messages) == 1 and messages[0].startswith(f"checkpoint {path} is unreadable (")
    assert messages[0].endswith("); starting afresh")
    assert_frame_equal(selection.provenance, zip_select(alpaca, config).provenance)


def test_saves_wait_for_the_interval_but_the_last_round_is_always_saved(alpaca: pl.DataFrame, tmp_path: Path) -> None:
    config = CONFIGS["default_samples"]
    checkpoint = SelectionCheckpoint(tmp_path / "zip.checkpoint", every_seconds=3600)
    selection = zip_select(alpaca, config, checkpoint=checkpoint)
    assert checkpoint.saves == 1
    # A rerun before the caller removed the checkpoint (killed while storing the result) selects nothing again.
    again = zip_select(alpaca, config, checkpoint=SelectionCheckpoint(checkpoint.path))
    assert again.summary["resumed_from_round"] == selection.summary["rounds"]
    assert_frame_equal(again.provenance, selection.provenance)
    killed_save = tmp_path / ".zip.checkpoint.abc.tmp"
    killed_save.write_bytes(b"left by a save killed two hours ago")
    os.utime(killed_save, (time.time() - 7200, time.time() - 7200))
    (tmp_path / ".zip.checkpoint.def.tmp").write_bytes(b"another process saving now")
    (tmp_path / "zip.checkpointer").write_bytes(b"someone else's")
    checkpoint.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".zip.checkpoint.def.tmp", "zip.checkpointer"]


def test_hierarchical_zip_recomputes_no_finished_shard_after_a_kill(
    alpaca: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = HierarchicalConfig(zip=ZipConfig(budget=200, k1=500, k2=40, k3=10), shards=4, processes=1)
    uninterrupted = hierarchical_zip_select(alpaca, config)
    calls: list[int] = []
    real_zip_select = hierarchical_module.zip_select

    def killed_in_the_final_pass(pool: pl.DataFrame, settings: ZipConfig, **kwargs: object) -> object:
        calls.append(pool.height)
        if len(calls) == 5:  # four shards, then the final pass
            raise Stop
        return real_zip_select(pool, settings, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hierarchical_module, "zip_select", killed_in_the_final_pass)
    checkpoint = SelectionCheckpoint(tmp_path / "h.checkpoint", every_seconds=0)
    with pytest.raises(Stop):
        hierarchical_zip_select(alpaca, config, checkpoint=checkpoint)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"h.checkpoint.shard{i}" for i in range(4)]

    calls.clear()
    resumed = hierarchical_zip_select(alpaca, config, checkpoint=SelectionCheckpoint(checkpoint.path))
    assert len(calls) == 1  # only the final pass ran
    assert resumed.summary["shards_resumed"] == 4
    assert_frame_equal(resumed.provenance, uninterrupted.provenance)
    checkpoint.remove()
    assert list(tmp_path.iterdir()) == []
