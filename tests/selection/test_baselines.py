"""Baseline selections on real pools: each picks what its name says, within its budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from entropy_assets.compression import make_compressor
from entropy_assets.selection.baselines import BASELINES, BaselineConfig, baseline_select, token_counts
from entropy_assets.selection.near_duplicates import first_of_near_duplicates
from entropy_assets.selection.warm import WarmStart
from entropy_assets.sources import load_pool, pool_from_records

ALPACA = "alpaca52k_en_part02_03252-06382.json"
GLAIVE = "llamafactory_glaive_toolcall_en_demo.json"
ENGLISH = "llamafactory_alpaca_en_demo.json"
CHINESE = "llamafactory_alpaca_zh_demo.json"


@pytest.fixture(scope="module")
def alpaca(raw_dir: Path) -> pl.DataFrame:
    """The first 600 of 3130 Alpaca records."""
    return load_pool(raw_dir / ALPACA).frame.head(600)


@pytest.fixture(scope="module")
def glaive(raw_dir: Path) -> pl.DataFrame:
    """300 tool-calling conversations, 265 distinct."""
    return load_pool(raw_dir / GLAIVE).frame


@pytest.fixture(scope="module")
def bilingual(raw_dir: Path) -> pl.DataFrame:
    """999 English Alpaca records, then 1000 Chinese ones."""
    return load_pool([raw_dir / ENGLISH, raw_dir / CHINESE]).frame


def _is_chinese(pool: pl.DataFrame) -> np.ndarray:
    return pool["id"].str.starts_with(CHINESE).to_numpy()


def _unchosen(pool: pl.DataFrame, positions: np.ndarray) -> np.ndarray:
    mask = np.ones(pool.height, dtype=bool)
    mask[positions] = False
    return np.flatnonzero(mask)


def test_random_is_seeded(alpaca: pl.DataFrame) -> None:
    first = baseline_select(alpaca, BaselineConfig("random", 50, seed=3))
    again = baseline_select(alpaca, BaselineConfig("random", 50, seed=3))
    other = baseline_select(alpaca, BaselineConfig("random", 50, seed=4))

    assert first.provenance.equals(again.provenance)
    assert first.positions.tolist() != other.positions.tolist()
    assert len(set(first.positions.tolist())) == 50
    assert first.provenance["stage1_score"].null_count() == 50
    # Not the pool's first rows: the draw spans the pool.
    assert first.positions.max() > 300


@pytest.mark.parametrize("compressor", ["zstd", "zlib"])
def test_ratio_picks_the_lowest_per_sample_ratios_first(compressor: str, alpaca: pl.DataFrame) -> None:
    selection = baseline_select(alpaca, BaselineConfig("ratio", 60, compressor=compressor, n_jobs=2))
    measure = make_compressor(compressor)
    ratios = np.array([len(t.encode()) / measure.compressed_size(t.encode()) for t in alpaca["text"]])
    scores = selection.provenance["stage1_score"].to_numpy()
    positions = selection.positions

    assert len(selection) == 60
    assert np.all(np.diff(scores) >= 0)
    np.testing.assert_allclose(scores, ratios[positions], rtol=1e-12)
    assert scores.max() <= ratios[_unchosen(alpaca, positions)].min()


def test_longest_picks_the_longest_texts(alpaca: pl.DataFrame) -> None:
    selection = baseline_select(alpaca, BaselineConfig("longest", 40))
    n_bytes = alpaca["n_bytes"].to_numpy()
    chosen = n_bytes[selection.positions]

    assert np.all(np.diff(chosen) <= 0)
    assert chosen.min() >= n_bytes[_unchosen(alpaca, selection.positions)].max()
    assert chosen[0] == n_bytes.max()


def test_dedup_never_picks_the_same_content_twice(glaive: pl.DataFrame) -> None:
    hashes = glaive["content_hash"].to_numpy()
    assert len(set(hashes)) == 265

    every_distinct = baseline_select(glaive, BaselineConfig("dedup", 265, seed=1))
    some = baseline_select(glaive, BaselineConfig("dedup", 100, seed=2))

    assert len(set(hashes[every_distinct.positions])) == 265
    assert len(set(hashes[some.positions])) == 100
    # The first copy of each content is the one kept.
    first_positions = {h: i for i, h in reversed(list(enumerate(hashes)))}
    assert sorted(every_distinct.positions.tolist()) == sorted(first_positions.values())


def test_dedup_budget_beyond_the_distinct_samples_is_refused(glaive: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"larger than the pool's distinct samples \(265 samples\)"):
        baseline_select(glaive, BaselineConfig("dedup", 266))

    distinct_bytes = int(glaive.unique("content_hash")["n_bytes"].sum())
    assert distinct_bytes < int(glaive["n_bytes"].sum())
    with pytest.raises(ValueError, match=rf"distinct samples \({distinct_bytes} bytes\)"):
        baseline_select(glaive, BaselineConfig("dedup", distinct_bytes + 1, budget_unit="bytes"))


@pytest.mark.parametrize("method", BASELINES)
def test_byte_budget_is_filled_by_the_last_pick(method: str, alpaca: pl.DataFrame) -> None:
    budget = 25_000
    selection = baseline_select(alpaca, BaselineConfig(method, budget, budget_unit="bytes", n_jobs=2))
    sizes = alpaca["n_bytes"].to_numpy()[selection.positions]

    assert sizes.sum() >= budget
    assert sizes[:-1].sum() < budget
    assert selection.summary["selected_bytes"] == sizes.sum()
    assert selection.summary["selected"] == len(selection) == len(set(selection.positions.tolist()))
    assert selection.provenance["rank"].to_list() == list(range(len(selection)))


@pytest.mark.parametrize("method", BASELINES)
def test_sample_budget_larger_than_the_pool_is_refused(method: str, alpaca: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"budget of 601 samples is larger than the pool \(600 samples\)"):
        baseline_select(alpaca, BaselineConfig(method, 601))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"method": "shortest"},
            r"baseline method must be one of random, ratio, longest, longest_tokens, dedup, near_dedup, ratio_band, "
            r"got 'shortest'",
        ),
        ({"budget": 0}, r"budget must be positive, got 0"),
        ({"budget_unit": "tokens"}, r"budget unit must be one of samples, bytes, got 'tokens'"),
        ({"n_jobs": -2}, r"BaselineConfig\.n_jobs must be >= 0, got -2"),
        ({"compressor": "brotli"}, r"unknown compressor 'brotli'"),
        ({"compressor": "zlib", "level": 12}, r"zlib level must be 0\.\.9, got 12"),
    ],
)
def test_baseline_config_rejects_bad_settings(settings: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"method": "random", "budget": 10, **settings}
    with pytest.raises(ValueError, match=message):
        BaselineConfig(**values)


def test_near_dedup_drops_the_near_copies_that_exact_dedup_keeps(raw_dir: Path) -> None:
    """The bad update of examples/data_update_risk.py: 20 records repeated 30 times each with a counter appended."""
    records = json.loads((raw_dir / ALPACA).read_text(encoding="utf-8"))[:300]
    variants = [{**records[i % 20], "output": f"{records[i % 20]['output']} (ref {i})"} for i in range(600)]
    pool = pool_from_records(records + variants, "update").frame
    is_variant = pool["id"].str.extract(r":(\d+)$").cast(pl.Int64).to_numpy() >= 300

    exact = baseline_select(pool, BaselineConfig("dedup", 200, seed=1))
    near = baseline_select(pool, BaselineConfig("near_dedup", 200, seed=1))
    assert is_variant[exact.positions].sum() > 100  # every variant is distinct content: exact dedup keeps them all
    # each variant is a near copy of one of the first 20 records: the few that pass are copies of one 5-shingle
    # record, at Jaccard 0.71 from it (LSH's 14 bands of 9 find such a pair half the time); no original is dropped
    kept = first_of_near_duplicates(pool["text"])
    assert is_variant[kept].sum() <= 12 and (~is_variant[kept]).sum() == 300
    assert is_variant[near.positions].sum() <= 8
    with pytest.raises(ValueError, match=r"larger than the pool's samples once near-duplicates are removed"):
        baseline_select(pool, BaselineConfig("near_dedup", 301))


def test_ratio_band_draws_from_the_central_half_of_the_ratios(alpaca: pl.DataFrame) -> None:
    selection = baseline_select(alpaca, BaselineConfig("ratio_band", 100, seed=5))
    measure = make_compressor("zstd")
    ratios = np.array([len(t.encode()) / max(measure.compressed_size(t.encode()), 1) for t in alpaca["text"]])
    low, high = np.percentile(ratios, (25, 75))
    chosen = ratios[selection.positions]
    assert len(selection) == 100 and ((chosen >= low) & (chosen <= high)).all()
    assert (
        selection.positions.tolist()
        != baseline_select(alpaca, BaselineConfig("ratio_band", 100, seed=6)).positions.tolist()
    )


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("Hello world", 2),  # Hello| world
        ("I'm here", 3),  # I|'m| here
        ("x = 3.14;", 6),  # x| =| 3|.|14|;
        ("  two spaces", 3),  # the space before a word joins it: | two| spaces
        ("a\n\nb", 4),  # a|\n|\n|b: GPT-2 splits the last newline of a run off
        ("end  ", 2),  # end|
        ("Hello, 世界!", 5),  # Hello|,| 世|界|!
        ("我喜欢你", 4),
        ("日本語のテキスト", 8),
        ("한국어", 3),
        ("", 0),
    ],
)
def test_token_counts_count_gpt2_pieces_and_each_cjk_character(text: str, pieces: int) -> None:
    assert token_counts(pl.Series([text])).tolist() == [pieces]


def test_token_counts_equal_the_gpt2_pretokenizer_with_look_ahead_on_real_records(bilingual: pl.DataFrame) -> None:
    regex = pytest.importorskip("regex")
    cjk = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
    gpt2 = regex.compile(  # GPT-2's own pattern, CJK characters apart, as the counter documents
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{cjk}]| ?(?:(?![{cjk}])\p{{L}})+| ?\p{{N}}+| ?[^\s\p{{L}}\p{{N}}]+|\s+(?!\S)|\s+"
    )
    expected = [len(gpt2.findall(text)) for text in bilingual["text"]]
    assert token_counts(bilingual["text"]).tolist() == expected


def test_token_counts_rank_texts_as_a_trained_bpe_does_better_than_bytes(raw_dir: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from scipy.stats import spearmanr

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    english = load_pool(raw_dir / "alpaca52k_en_part01_00000-03252.json").frame["text"].to_list()
    bpe.train_from_iterator(english, tokenizers.trainers.BpeTrainer(vocab_size=4000, show_progress=False))
    for name, at_least in ((ENGLISH, 0.99), ("code_alpaca_2k.json", 0.96)):
        pool = load_pool(raw_dir / name).frame
        bpe_counts = [len(encoding.ids) for encoding in bpe.encode_batch(pool["text"].to_list())]
        ours = spearmanr(token_counts(pool["text"]), bpe_counts).statistic
        assert ours >= at_least, name
        assert ours > spearmanr(pool["n_bytes"], bpe_counts).statistic + 0.01, name


def test_longest_tokens_picks_the_most_tokens_first_and_records_them(bilingual: pl.DataFrame) -> None:
    selection = baseline_select(bilingual, BaselineConfig("longest_tokens", 120))
    counts = token_counts(bilingual["text"])
    chosen = counts[selection.positions]

    assert np.all(np.diff(chosen) <= 0)
    assert chosen.min() >= counts[_unchosen(bilingual, selection.positions)].max()
    assert chosen[0] == counts.max()
    assert selection.provenance["stage1_score"].to_list() == chosen.astype(float).tolist()


def test_longest_tokens_reaches_the_chinese_samples_that_longest_bytes_passes_over(bilingual: pl.DataFrame) -> None:
    is_chinese = _is_chinese(bilingual)
    counts = token_counts(bilingual["text"])
    bytes_per_token = bilingual["n_bytes"].to_numpy() / counts
    # A Han character is 3 UTF-8 bytes and one token; an English token is a word of about 5 bytes with its space.
    assert np.median(bytes_per_token[is_chinese]) == pytest.approx(3.0, abs=0.1)
    assert np.median(bytes_per_token[~is_chinese]) > 4.5

    by_bytes = baseline_select(bilingual, BaselineConfig("longest", 100))
    by_tokens = baseline_select(bilingual, BaselineConfig("longest_tokens", 100))
    assert is_chinese[by_bytes.positions].sum() == 0
    assert is_chinese[by_tokens.positions].sum() >= 50
    assert counts[by_tokens.positions].sum() > counts[by_bytes.positions].sum()
    assert len(set(by_bytes.positions.tolist()) & set(by_tokens.positions.tolist())) < 50


def test_longest_tokens_byte_budget_takes_the_token_order_until_the_bytes_are_spent(bilingual: pl.DataFrame) -> None:
    budget = 60_000
    selection = baseline_select(bilingual, BaselineConfig("longest_tokens", budget, budget_unit="bytes", seed=2))
    order = baseline_select(bilingual, BaselineConfig("longest_tokens", bilingual.height, seed=2)).positions
    sizes = bilingual["n_bytes"].to_numpy()[selection.positions]

    assert selection.positions.tolist() == order[: len(selection)].tolist()
    assert sizes.sum() >= budget > sizes[:-1].sum()
    # Fewer bytes per token than English: the same bytes buy more samples than the longest in bytes do.
    assert len(selection) > len(baseline_select(bilingual, BaselineConfig("longest", budget, budget_unit="bytes")))


def test_longest_tokens_seed_orders_only_the_ties(bilingual: pl.DataFrame) -> None:
    counts = token_counts(bilingual["text"])
    first = baseline_select(bilingual, BaselineConfig("longest_tokens", 200, seed=0))
    chosen = counts[first.positions]
    assert first.provenance.equals(baseline_select(bilingual, BaselineConfig("longest_tokens", 200, seed=0)).provenance)
    # The last count chosen is shared by samples left out: which of them are chosen is the seed's to say.
    assert (counts == chosen[-1]).sum() > (chosen == chosen[-1]).sum()

    others = [baseline_select(bilingual, BaselineConfig("longest_tokens", 200, seed=seed)) for seed in range(1, 6)]
    assert all(counts[other.positions].tolist() == chosen.tolist() for other in others)
    assert any(set(other.positions.tolist()) != set(first.positions.tolist()) for other in others)


def test_longest_tokens_warm_start_re_ranks_the_new_pool(bilingual: pl.DataFrame) -> None:
    before = bilingual.head(1500)  # every English record, and 501 Chinese ones; then 499 more arrive
    config = BaselineConfig("longest_tokens", 100, seed=1)
    earlier = baseline_select(before, config)
    warm = WarmStart(
        tuple(before["id"].gather(earlier.positions)),
        tuple(before["content_hash"].gather(earlier.positions)),
        earlier_pool=before["content_hash"].to_list(),
    )
    warm_selection = baseline_select(bilingual, config, warm=warm)
    cold = baseline_select(bilingual, config)

    assert warm_selection.provenance.equals(cold.provenance)
    assert (warm_selection.positions >= 1500).any()  # new long Chinese samples displace earlier picks
