"""Every shard's scores gathered row for row with the pool: what a selection reads (a few columns, matched by the
shards' order, or by a hash of the ids where that order does not hold) is what joining every column on the ids
gives."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from entropy_assets.scoring import shard_keys
from entropy_assets.selection.baselines import LIGHT_COLUMNS
from entropy_assets.stages import PoolResult, ScoringSettings, Workspace, build_pool
from entropy_assets.stages import scores as scores_stage
from entropy_assets.stages.scores import SELECTION_COLUMNS, gather_scores, score_shard
from entropy_assets.storage import Storage

SHARDS = 4


@pytest.fixture(scope="module")
def sharded(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, PoolResult, dict]:
    """1,300 chats, web text and code (with copies: the pool's first 200 samples again) scored in 4 shards."""
    root = tmp_path_factory.mktemp("gather")
    folder = root / "data"
    folder.mkdir()
    for name in ("fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"):
        shutil.copy(raw_dir / name, folder)
    code = pl.read_json(raw_dir / "code_alpaca_2k.json").head(500)
    pl.concat([code, code.head(200)]).write_json(folder / "code.json")
    workspace = Workspace("gather", Storage(str(root / "store")), logging.getLogger("test"))
    pool = build_pool(workspace, [str(folder)], shards=SHARDS)
    scoring = ScoringSettings(shards=SHARDS)
    scores = {shard: score_shard(workspace, pool, scoring, shard, None) for shard in shard_keys(SHARDS)}
    return workspace, pool, scores


def _expected(workspace: Workspace, pool: PoolResult, scores: dict) -> pl.DataFrame:
    light = workspace.storage.read_parquet(pool.file, columns=list(LIGHT_COLUMNS))
    every_column = gather_scores(workspace, pool, light, ScoringSettings(shards=SHARDS), scores).frame
    return every_column.select(SELECTION_COLUMNS).drop("id").with_columns(pl.col("compressor").cast(pl.String))


def _narrow(workspace: Workspace, pool: PoolResult, scores: dict) -> pl.DataFrame:
    light = workspace.storage.read_parquet(pool.file, columns=list(LIGHT_COLUMNS))
    narrow = gather_scores(workspace, pool, light, ScoringSettings(shards=SHARDS), scores, SELECTION_COLUMNS).frame
    return narrow.with_columns(pl.col("compressor", "excluded").cast(pl.String))


def test_the_shards_order_gives_the_rows_the_ids_give(sharded: tuple[Workspace, PoolResult, dict]) -> None:
    workspace, pool, scores = sharded
    expected = _expected(workspace, pool, scores)
    assert expected.height == pool.records_kept and expected["ratio"].null_count() == 0
    assert _narrow(workspace, pool, scores).equals(expected)


def test_rows_out_of_the_shards_order_are_matched_by_id(
    sharded: tuple[Workspace, PoolResult, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shards that do not hold the pool's rows in its order (here: the shard of every sample taken wrongly) are
    matched by a hash of the ids: the same rows."""
    workspace, pool, scores = sharded
    expected = _expected(workspace, pool, scores)
    monkeypatch.setattr(scores_stage, "shard_of", lambda hashes, shards: np.zeros(len(hashes), dtype=np.int64))
    assert _narrow(workspace, pool, scores).equals(expected)
