"""A subset's mix against its pool's (facets, distances), and stratified selection that keeps it, on real records."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from entropy_assets import composition as composition_module
from entropy_assets.composition import composition, facet_frame, judge_composition, mix, scripts, total_variation
from entropy_assets.selection import methods
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.selection.stratified import Stratify, quotas
from entropy_assets.sources import load_pool, pool_from_records

MIXED = ("llamafactory_alpaca_zh_demo.json", "llamafactory_alpaca_en_demo.json", "code_alpaca_2k.json")


@pytest.fixture(scope="module")
def mixed_pool(raw_dir: Path) -> pl.DataFrame:
    """4,016 records, a quarter of them Chinese: the pool where unstratified ZIP drifts to Chinese."""
    return load_pool([raw_dir / name for name in MIXED]).frame


def test_the_dominant_script_of_real_records(raw_dir: Path) -> None:
    chinese = mix(scripts(load_pool(raw_dir / "llamafactory_alpaca_zh_demo.json").frame["text"]))
    english = mix(scripts(load_pool(raw_dir / "llamafactory_alpaca_en_demo.json").frame["text"]))
    wiki = mix(scripts(load_pool(raw_dir / "pretrain_wiki_demo.txt").frame["text"]))
    assert chinese["Han"] > 0.85 and set(chinese) <= {"Han", "Latin"}  # some records are code or English
    assert english == {"Latin": 1.0} and wiki == {"Latin": 1.0}
    made = pool_from_records(
        [
            {"text": "Привет, как дела? Это текст на русском языке."},
            {"text": "مرحبا، هذا نص باللغة العربية."},
            {"text": "こんにちは、これはひらがなとカタカナのテキストです。"},
            {"text": "안녕하세요, 이것은 한국어 문장입니다."},
            {"text": "12345 + 678 = 13023"},
            {"text": "The word 中文 inside an English sentence stays Latin."},
        ],
        "scripts",
    ).frame
    assert scripts(made["text"]).to_list() == ["Cyrillic", "Arabic", "Kana", "Hangul", "other", "Latin"]


def test_scripts_taken_a_batch_at_a_time_are_those_of_the_whole(raw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = pl.concat(
        [
            load_pool(raw_dir / name).frame["text"]
            for name in ("llamafactory_alpaca_zh_demo.json", "pretrain_wiki_demo.txt")
        ]
    )
    whole = scripts(texts)
    monkeypatch.setattr(composition_module, "SCRIPT_BATCH", 97)  # batches that cut the Chinese and the English apart
    assert scripts(texts).to_list() == whole.to_list() and len(whole) > 97 * 5


def test_facets_name_the_file_the_format_and_the_length(raw_dir: Path, fixture_dir: Path) -> None:
    pool = load_pool([raw_dir / "pretrain_c4_demo.jsonl", fixture_dir / "mixed_formats.jsonl"]).frame
    facets = facet_frame(pool)
    assert facets.columns == ["source", "format", "script", "length"]
    assert set(facets["source"]) == {"pretrain_c4_demo.jsonl", "mixed_formats.jsonl"}
    assert facets["format"].to_list() == pool["format"].to_list()
    lengths = dict(zip(pool["n_bytes"], facets["length"], strict=True))
    assert all(
        (label == "<256 B") == (size < 256) and (label == ">=16 KiB") == (size >= 16384)
        for size, label in lengths.items()
    )


def test_distance_of_two_mixes() -> None:
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert total_variation({"a": 0.75, "b": 0.25}, {"a": 0.35, "b": 0.65}) == pytest.approx(0.4)


@given(
    sizes=st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 500), min_size=1, max_size=6),
    budget=st.integers(1, 3000),
)
def test_quotas_add_up_to_the_budget_and_never_exceed_a_stratum(sizes: dict[str, int], budget: int) -> None:
    if sum(sizes.values()) < budget:
        with pytest.raises(ValueError, match="fewer than the budget"):
            quotas(sizes, budget)
        return
    quota = quotas(sizes, budget)
    assert sum(quota.values()) == budget
    assert all(0 <= quota[name] <= sizes[name] for name in sizes)
    total = sum(sizes.values())
    # where no stratum is full, each gets its exact proportional share, rounded up or down
    if all(quota[name] < sizes[name] for name in sizes if sizes[name]):
        assert all(abs(quota[name] - budget * sizes[name] / total) < 1 for name in sizes)


def test_weights_replace_the_pool_shares() -> None:
    assert quotas({"en": 900, "zh": 100}, 100, {"en": 1.0, "zh": 1.0}) == {"en": 50, "zh": 50}
    assert quotas({"en": 900, "zh": 30}, 100, {"en": 1.0, "zh": 1.0}) == {"en": 70, "zh": 30}  # zh is full
    assert quotas({"en": 900, "zh": 100}, 100, {"en": 1.0}) == {"en": 100, "zh": 0}


@pytest.mark.parametrize("by", ["source", "script"])
def test_stratified_zip_keeps_the_pool_mix_with_the_budget_exact(mixed_pool: pl.DataFrame, by: str) -> None:
    options = SelectionOptions(budget=300, k1=2000, k2=100, k3=50, stratify=Stratify(by))
    selection = methods.select(mixed_pool, method_config("zip", options))
    assert len(selection) == 300 and mixed_pool[selection.positions]["id"].n_unique() == 300
    mixes = composition(facet_frame(mixed_pool), selection.positions)
    assert all(abs(mixes[by].subset.get(name, 0.0) - share) <= 0.02 for name, share in mixes[by].pool.items())
    strata = selection.summary["strata"]
    assert sum(stratum["selected"] for stratum in strata.values()) == 300
    assert all(stratum["ratio_zlib9"] > 1.0 for stratum in strata.values())
    assert selection.config["stratify"] == {"by": by, "weights": None} and selection.config["budget"] == 300


def test_unstratified_zip_drifts_to_the_script_that_compresses_worse(mixed_pool: pl.DataFrame) -> None:
    options = SelectionOptions(budget=300, k1=2000, k2=100, k3=50)
    zip_mix = composition(facet_frame(mixed_pool), methods.select(mixed_pool, method_config("zip", options)).positions)
    random_positions = methods.select(mixed_pool, method_config("random", options)).positions
    random_mix = composition(facet_frame(mixed_pool), random_positions)
    assert zip_mix["script"].subset["Han"] > 0.45 > 0.3 > random_mix["script"].subset["Han"]
    assert not judge_composition(zip_mix, 0.2)[0] and judge_composition(random_mix, 0.2)[0]
    assert "script" in judge_composition(zip_mix, 0.2)[1]


def test_a_stratified_byte_budget_is_shared_by_bytes(mixed_pool: pl.DataFrame) -> None:
    options = SelectionOptions(budget=200_000, budget_unit="bytes", stratify=Stratify("source"), k1=500, k2=50, k3=20)
    selection = methods.select(mixed_pool, method_config("random", options))
    chosen = mixed_pool[selection.positions]
    assert 195_000 <= chosen["n_bytes"].sum() <= 200_000 + int(mixed_pool["n_bytes"].max())
    by_source = chosen.group_by("source").agg(pl.sum("n_bytes")).sort("source")["n_bytes"].to_list()
    pool_bytes = mixed_pool.group_by("source").agg(pl.sum("n_bytes")).sort("source")["n_bytes"].to_list()
    shares = [b / sum(by_source) for b in by_source]
    assert all(abs(s - p / sum(pool_bytes)) < 0.02 for s, p in zip(shares, pool_bytes, strict=True))
