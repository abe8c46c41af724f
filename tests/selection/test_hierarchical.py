"""Hierarchical ZIP on real Alpaca records: the budget exactly, no duplicates, close to one ZIP pass."""

import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from entropy_assets.scoring import shard_of
from entropy_assets.selection.baselines import BaselineConfig, baseline_select
from entropy_assets.selection.hierarchical import HierarchicalConfig, hierarchical_zip_select
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import load_pool


def ratio(pool: pl.DataFrame, positions: np.ndarray) -> float:
    text = "\n".join(pool[positions]["text"].to_list()).encode("utf-8")
    return len(text) / len(zlib.compress(text, 9))


@pytest.fixture(scope="module")
def alpaca(raw_dir: Path) -> pl.DataFrame:
    """6382 Alpaca records from two chunks."""
    return load_pool(sorted(raw_dir.glob("alpaca52k_en_part0[12]_*.json"))).frame


@pytest.mark.parametrize("processes", [1, 2])
def test_hierarchical_zip_fills_the_budget_close_to_one_pass(alpaca: pl.DataFrame, processes: int) -> None:
    config = ZipConfig(budget=600, k1=1000, k2=100, k3=50)
    selection = hierarchical_zip_select(alpaca, HierarchicalConfig(zip=config, shards=4, processes=processes))
    positions = selection.positions
    assert len(selection) == 600 and len(set(positions.tolist())) == 600
    assert selection.provenance["id"].to_list() == alpaca[positions]["id"].to_list()
    assert selection.summary["union_size"] == 4 * 300  # each shard keeps twice its share
    single = ratio(alpaca, zip_select(alpaca, config).positions)
    random = ratio(alpaca, baseline_select(alpaca, BaselineConfig(method="random", budget=600)).positions)
    hierarchical = ratio(alpaca, positions)
    assert hierarchical < random
    assert hierarchical < single * 1.05


def test_shards_come_from_content_hashes(alpaca: pl.DataFrame) -> None:
    shards = shard_of(alpaca["content_hash"], 8)
    assert np.array_equal(shards, shard_of(alpaca["content_hash"], 8))
    counts = np.bincount(shards, minlength=8)
    assert counts.min() > 0.8 * len(alpaca) / 8 and counts.max() < 1.2 * len(alpaca) / 8
    doubled = pl.concat([alpaca.head(50), alpaca.head(50)])  # copies of a content share a shard
    halves = shard_of(doubled["content_hash"], 8)
    assert np.array_equal(halves[:50], halves[50:])


def test_bad_hierarchical_settings_are_rejected() -> None:
    config = ZipConfig(budget=10)
    for fields, message in (({"shards": 0}, "shards"), ({"oversample": 0.5}, "oversample")):
        with pytest.raises(ValueError, match=message):
            HierarchicalConfig(zip=config, **fields)  # type: ignore[arg-type]


def test_stage1_sizes_from_the_scores_select_exactly_what_compressing_again_selects(
    alpaca: pl.DataFrame, raw_dir: Path
) -> None:
    """The scores hold whole frames; stage 1 takes the empty frame's bytes off them, as it does when it compresses,
    and measures again only samples too large for the level's tables (a code sample of 140 KB is added for that)."""
    from entropy_assets.compression import KnownSizes, make_compressor
    from entropy_assets.scoring import score_samples

    long = alpaca.head(1).with_columns(
        id=pl.lit("long"), text=pl.lit((raw_dir / "code_alpaca_2k.json").read_text()[:140_000])
    )
    pool = pl.concat([alpaca.head(3000), long.with_columns(n_bytes=pl.col("text").str.len_bytes().cast(pl.Int64))])
    compressor = make_compressor("zstd")
    scores, _ = score_samples(pool, compressor)
    known = KnownSizes(compressor.describe(), scores["compressed_bytes"].to_numpy())
    texts = [t.encode() for t in pool["text"]]
    assert np.array_equal(compressor.alone_sizes(texts, 2, known), compressor.alone_sizes(texts, 2))
    config = ZipConfig(budget=300, k1=1000, k2=100, k3=50)
    expected = zip_select(pool, config).provenance
    assert zip_select(pool, config, known=known).provenance.equals(expected)
    # Sizes from another compressor's settings are not taken: the selection is the same.
    other = KnownSizes(make_compressor("zstd", 1).describe(), np.ones(pool.height, dtype=np.int64))
    assert zip_select(pool, config, known=other).provenance.equals(expected)
