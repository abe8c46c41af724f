"""Warm starts on real pools: a selection that begins from an earlier one keeps what is still there and unchanged,
fills the freed budget, lets new samples in where they lower the set's ratio, and changes far less than a full
re-selection would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from entropy_assets.entropy_law import law_ratio
from entropy_assets.selection.baselines import BaselineConfig, baseline_select
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.warm import WarmStart, write_provenance
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import load_pool

ALPACA = ("alpaca52k_en_part02_03252-06382.json", "alpaca52k_en_part03_06382-09407.json")
CONFIG = ZipConfig(budget=400, k1=1500, k2=80, k3=20)


@pytest.fixture(scope="module")
def pools(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    """6,155 Alpaca records, then the same with 40 of them edited, 100 removed (a file cut short) and 200 new
    Alpaca-GPT4 records added."""
    folder = tmp_path_factory.mktemp("warm")
    records = [json.loads((raw_dir / name).read_text(encoding="utf-8")) for name in ALPACA]
    for name, data in zip(ALPACA, records, strict=True):
        (folder / name).write_text(json.dumps(data), encoding="utf-8")
    before = load_pool([folder / name for name in ALPACA]).frame
    for record in records[0][:40]:
        record["output"] += " (This answer was revised after the first selection.)"
    (folder / ALPACA[0]).write_text(json.dumps(records[0]), encoding="utf-8")
    (folder / ALPACA[1]).write_text(json.dumps(records[1][:-100]), encoding="utf-8")
    extra = json.loads((raw_dir / "llamafactory_alpaca_en_demo.json").read_text(encoding="utf-8"))[:200]
    (folder / "new.json").write_text(json.dumps(extra), encoding="utf-8")
    after = load_pool([*(folder / name for name in ALPACA), folder / "new.json"]).frame
    return before, after


def warm_from(earlier: pl.DataFrame, positions: np.ndarray) -> WarmStart:
    chosen = earlier[positions].select("id", "content_hash").with_row_index("rank")
    return WarmStart.from_provenance(chosen, set(earlier["content_hash"].to_list()))


def test_a_warm_zip_keeps_what_is_unchanged_fills_the_budget_and_lets_new_samples_in(
    pools: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    before, after = pools
    earlier = zip_select(before, CONFIG)
    warm = warm_from(before, earlier.positions)
    selection = zip_select(after, CONFIG, warm=warm)

    chosen = after[selection.positions]
    assert len(selection) == 400 and chosen["id"].n_unique() == 400
    provenance = selection.provenance
    kept = provenance.filter(pl.col("round") == -1).join(after.select("id", "content_hash"), on="id")
    earlier_content = dict(zip(before["id"], before["content_hash"], strict=True))
    # What is kept is unchanged; what left the pool or changed is not kept.
    assert all(earlier_content[i] == h for i, h in zip(kept["id"], kept["content_hash"], strict=True))
    summary = selection.summary["warm"]
    present = set(zip(after["id"], after["content_hash"], strict=True))
    gone = [i for i, h in zip(warm.ids, warm.content_hashes, strict=True) if (i, h) not in present]
    assert summary["dropped"] == len(gone) > 0 and not set(gone) & set(kept["id"])
    assert summary["new"] >= 190 and summary["swapped"] > 0 and chosen["id"].str.starts_with("new.json").any()
    assert summary["kept"] == kept.height == len(warm.ids) - len(gone) - summary["swapped"]

    assert (provenance["round"] == -1).sum() == summary["kept"]
    assert provenance.filter(pl.col("round") == -1)["stage2_score"].null_count() == summary["kept"]
    # Warm changes far less than a full re-selection, at about the same ratio.
    full = zip_select(after, CONFIG)
    earlier_ids = set(before[earlier.positions]["id"])
    assert len(set(chosen["id"]) - earlier_ids) < len(set(after[full.positions]["id"]) - earlier_ids) / 2
    warm_ratio = law_ratio(chosen["text"].to_list())
    assert warm_ratio <= law_ratio(after[full.positions]["text"].to_list()) * 1.01
    # Deterministic.
    assert_frame_equal(zip_select(after, CONFIG, warm=warm).provenance, provenance)


def test_a_warm_start_without_the_earlier_pool_only_fills_the_freed_budget(
    pools: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    before, after = pools
    earlier = zip_select(before, CONFIG)
    known = warm_from(before, earlier.positions)
    blind = WarmStart(known.ids, known.content_hashes)
    selection = zip_select(after, CONFIG, warm=blind)
    assert selection.summary["warm"]["swapped"] == 0 and selection.summary["warm"]["new"] == 0
    assert len(selection) == 400


def test_a_killed_warm_zip_resumes_to_the_uninterrupted_selection(
    pools: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    before, after = pools
    config = ZipConfig(budget=400, k1=1500, k2=80, k3=5)  # 5 a round: the 40+ freed slots take several rounds
    warm = warm_from(before, zip_select(before, config).positions)
    uninterrupted = zip_select(after, config, warm=warm)
    path = tmp_path / "warm.checkpoint"
    rounds: list[int] = []

    class Stop(Exception):
        pass

    def stop_after_two(selected: int) -> None:
        rounds.append(selected)
        if len(rounds) == 2:
            raise Stop

    with pytest.raises(Stop):
        zip_select(after, config, stop_after_two, checkpoint=SelectionCheckpoint(path, every_seconds=0), warm=warm)
    checkpoint = SelectionCheckpoint(path, every_seconds=0)
    resumed = zip_select(after, config, checkpoint=checkpoint, warm=warm)
    assert checkpoint.resumed_from_round == 2
    assert_frame_equal(resumed.provenance, uninterrupted.provenance)
    cold = SelectionCheckpoint(path, every_seconds=0)  # a cold run does not take up a warm run's checkpoint
    zip_select(after, config, checkpoint=cold)
    assert cold.resumed_from_round == 0


def test_warm_paper_mode_keeps_the_earlier_picks_as_the_stream_start(pools: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    before, after = pools
    config = ZipConfig.paper(budget=100, k1=400, k2=30, k3=10)
    earlier = zip_select(before, config)
    # The earlier selection as if it had picked ten of the records edited since: those ten cannot be kept.
    picks = np.concatenate([earlier.positions[:90], np.arange(10)])
    selection = zip_select(after, config, warm=warm_from(before, picks))
    kept = selection.provenance.filter(pl.col("round") == -1)
    assert len(selection) == 100 and kept["id"].to_list() == before[earlier.positions[:90]]["id"].to_list()
    assert selection.summary["warm"]["dropped"] == 10 and selection.summary["rounds"] >= 1


def test_a_warm_random_draw_keeps_its_draws_and_takes_new_samples_by_chance(
    pools: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    before, after = pools
    config = BaselineConfig("random", 1000, seed=3)
    earlier = baseline_select(before, config)
    warm = warm_from(before, earlier.positions)
    selection = baseline_select(after, config, warm=warm)
    summary = selection.summary["warm"]
    chosen = set(after[selection.positions]["id"])
    assert len(chosen) == 1000
    new = chosen & set(after.filter(pl.col("id").str.starts_with("new.json"))["id"])
    # 200 new of 6,255: a fresh draw of 1,000 would hold about 32 of them; the reservoir takes each with that chance.
    assert 15 <= len(new) <= 50 and summary["swapped"] >= len(new)
    assert summary["kept"] >= 1000 - summary["dropped"] - summary["swapped"]
    assert baseline_select(after, config, warm=warm).provenance.equals(selection.provenance)


def test_a_provenance_file_carries_what_a_later_warm_start_needs(
    pools: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    before, after = pools
    earlier = zip_select(before, CONFIG)
    table = earlier.provenance.join(before.select("id", "content_hash"), on="id")
    write_provenance(tmp_path / "earlier.parquet", table, before)
    from_file = WarmStart.from_file(tmp_path / "earlier.parquet")
    assert from_file.ids == tuple(before[earlier.positions]["id"])
    assert set(from_file.earlier_pool or ()) == set(before["content_hash"])
    assert_frame_equal(zip_select(after, CONFIG, warm=from_file).provenance,
                       zip_select(after, CONFIG, warm=warm_from(before, earlier.positions)).provenance)  # fmt: skip
    earlier.provenance.write_parquet(tmp_path / "bare.parquet")
    with pytest.raises(ValueError, match=r"bare\.parquet: a provenance file without content hashes"):
        WarmStart.from_file(tmp_path / "bare.parquet")
