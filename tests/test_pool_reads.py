"""Streamed reads of a stored pool agree with reading it whole: rows by id, held-out hashes, facet counts."""

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl

from entropy_assets.composition import FACETS, facet_frame
from entropy_assets.stages import Workspace, build_pool, holdout_mask
from entropy_assets.stages.pool_mix import facet_counts
from entropy_assets.stages.pool_reads import rows_with, smallest_distinct
from entropy_assets.storage import Storage


def test_streamed_reads_of_a_pool_folder_agree_with_the_whole_pool(
    raw_copy: Callable[..., Path], tmp_path: Path
) -> None:
    data = raw_copy(["fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl", "llamafactory_alpaca_zh_demo.json"])
    storage = Storage(str(tmp_path / "store"))
    pool = build_pool(Workspace("p", storage), [str(data)])
    whole = storage.read_parquet(pool.file)
    assert storage.path(pool.file).is_dir()  # a pool version is a folder of parts, read part by part

    wanted = set(whole["id"].gather([0, 5, 900, whole.height - 1]).to_list())
    rows = rows_with(storage, pool.file, "id", wanted)
    assert rows.equals(whole.filter(pl.col("id").is_in(list(wanted))))

    held = smallest_distinct(storage, pool.file, "content_hash", 25)
    assert set(held.to_list()) == set(whole.filter(holdout_mask(whole, 25))["content_hash"].to_list())

    counts = facet_counts(storage, pool.file, excluded=set(held.to_list()))
    facets = facet_frame(whole.filter(~holdout_mask(whole, 25)))
    for facet in FACETS:
        assert dict(counts[facet]) == dict(facets[facet].value_counts(name="n").iter_rows())
    assert sum(counts["script"].values()) == whole.height - 25
    assert counts["script"]["Han"] > 800  # the Chinese demo's records
    # the left-out samples' scripts were read from the features the pool step stored; without them, made again
    features = storage.path(pool.file).parent / "part_features" / "script"
    assert len(list(features.iterdir())) == len(list(storage.path(pool.file).iterdir()))
    shutil.rmtree(features.path)
    assert facet_counts(storage, pool.file, excluded=set(held.to_list())) == counts
