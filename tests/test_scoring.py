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


@pytest.fixture(scope="module")
def mixed_frame(raw_dir: Path) -> pl.DataFrame:
    """Chinese Alpaca records (multi-byte UTF-8), C4 documents up to 37 KB and Wikipedia articles up to 110 KB
    (above the 16,384 bytes that zstd measures on another path), with empty texts among them and at the end."""
    paths = [raw_dir / "llamafactory_alpaca_zh_demo.json", raw_dir / "pretrain_c4_demo.jsonl"]
    pool = load_pool([*paths, raw_dir / "pretrain_wiki_demo.txt"]).frame.select("id", "content_hash", "n_bytes", "text")
    empty = pl.DataFrame(
        {"id": ["empty-a", "empty-b"], "content_hash": ["0" * 32, "0" * 32], "n_bytes": [0, 0], "text": ["", ""]},
        schema=pool.schema,
    )
    return pl.concat([pool.head(500), empty.head(1), pool.slice(500), empty.tail(1)])


@pytest.mark.parametrize("threads", [1, 2])
def test_scores_of_packed_texts_equal_each_text_compressed_alone(mixed_frame: pl.DataFrame, threads: int) -> None:
    compressor = make_compressor("zstd")
    texts = [text.encode("utf-8") for text in mixed_frame["text"].to_list()]
    assert sum(len(t) != len(t.decode("utf-8")) for t in texts) >= 1000 and texts[-1] == b""
    assert sum(len(t) > 16384 for t in texts) >= 20 and sum(not t for t in texts) == 2

    scores, compressed = score_samples(mixed_frame, compressor, threads=threads)

    assert compressed == mixed_frame.height
    assert scores["compressed_bytes"].to_list() == [compressor.compressed_size(t) for t in texts]
    # A slice of a frame is measured from its own texts, not from the start of the buffers it shares.
    sliced, _ = score_samples(mixed_frame.slice(777, 900), compressor, threads=threads)
    assert sliced["compressed_bytes"].to_list() == [compressor.compressed_size(t) for t in texts[777:1677]]


def test_scores_reuse_sizes_of_repeated_contents_and_measure_only_new_ones(mixed_frame: pl.DataFrame) -> None:
    compressor = make_compressor("zstd")
    scores, _ = score_samples(mixed_frame, compressor)
    # The previous scores hold the first 300 contents twice; the frame repeats some of them and adds new ones.
    previous = pl.concat([scores.head(300), scores.head(300)])
    frame = pl.concat([mixed_frame.slice(100, 400), mixed_frame.head(50)])

    again, compressed = score_samples(frame, compressor, previous=previous)

    assert compressed == 200
    assert again["id"].to_list() == frame["id"].to_list()
    expected = [compressor.compressed_size(t.encode("utf-8")) for t in frame["text"].to_list()]
    assert again["compressed_bytes"].to_list() == expected
