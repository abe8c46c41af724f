"""Per-sample scores and content-hash shards, on real data."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from entropy_assets.compression import make_compressor
from entropy_assets.scoring import read_shard, score_samples, shard_keys, shard_of, write_shard_ordered
from entropy_assets.sources import load_pool, pool_from_records
from entropy_assets.versions import shard_fingerprints


@pytest.fixture(scope="module")
def pool(raw_dir: Path) -> pl.DataFrame:
    """Alpaca records, ShareGPT chats and C4 documents: 3,000+ samples of three formats."""
    paths = [raw_dir / "alpaca52k_en_part02_03252-06382.json", raw_dir / "fastchat_dummy_conversation.json"]
    return load_pool([*paths, raw_dir / "pretrain_c4_demo.jsonl"]).frame


def test_shard_keys_sort_as_their_numbers() -> None:
    assert shard_keys(1) == ["0"]
    assert shard_keys(12) == [f"{i:02d}" for i in range(12)]
    assert sorted(shard_keys(120)) == shard_keys(120)
    with pytest.raises(ValueError, match="shards must be >= 1"):
        shard_keys(0)


def test_shards_split_the_pool_evenly_by_content(pool: pl.DataFrame) -> None:
    shards = shard_of(pool["content_hash"], 8)
    counts = np.bincount(shards, minlength=8)
    assert counts.sum() == pool.height and counts.min() > 0.8 * pool.height / 8
    # A sample's shard is a function of its content alone: the same text elsewhere in a pool lands alike.
    reversed_pool = pool.reverse()
    assert np.array_equal(shard_of(reversed_pool["content_hash"], 8), shards[::-1])


def test_a_change_alters_only_the_fingerprint_of_its_own_shard(pool: pl.DataFrame) -> None:
    before = shard_fingerprints(pool, 8)
    assert before == shard_fingerprints(pool, 8) and len(set(before.values())) == 8
    added = pool_from_records([{"text": "One more document, about shards and fingerprints."}], source="new.jsonl").frame
    grown = pl.concat([pool, added.select(pool.columns)])
    after = shard_fingerprints(grown, 8)
    shard = shard_keys(8)[int(shard_of(added["content_hash"], 8)[0])]
    assert {key for key in before if before[key] != after[key]} == {shard}


def test_read_shard_returns_exactly_the_rows_of_its_shard(pool: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "pool.parquet"
    pool.write_parquet(path)
    shards = shard_of(pool["content_hash"], 5)
    read = [read_shard(path, index, 5) for index in range(5)]
    for index, frame in enumerate(read):
        assert frame.columns == ["id", "content_hash", "n_bytes", "text"]
        assert frame["id"].to_list() == pool["id"].filter(pl.Series(shards == index)).to_list()
    assert sum(frame.height for frame in read) == pool.height

    ordered = tmp_path / "ordered.parquet"
    write_shard_ordered(pool, 5, ordered)
    assert pl.read_parquet(ordered)["shard"].is_sorted()
    for index in range(5):  # the shard-ordered copy gives each shard the same rows, in the same order
        assert read_shard(ordered, index, 5).equals(read[index])


def test_scores_reuse_stored_sizes_by_content(pool: pl.DataFrame) -> None:
    compressor = make_compressor("zstd")
    frame = pool.select("id", "content_hash", "n_bytes", "text")
    scores, compressed = score_samples(frame, compressor)
    assert compressed == frame.height
    expected = [compressor.compressed_size(t.encode("utf-8")) for t in frame["text"].to_list()]
    assert scores["compressed_bytes"].to_list() == expected
    assert np.allclose(scores["ratio"].to_numpy(), frame["n_bytes"].to_numpy() / np.array(expected))

    again, compressed = score_samples(frame, compressor, previous=scores.head(1000))
    assert compressed == frame.height - 1000 and again.equals(scores)
    # Sizes from other settings are not reused.
    _, compressed = score_samples(frame, make_compressor("zstd", 9), previous=scores)
    assert compressed == frame.height
