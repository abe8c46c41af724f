"""ZIP selection on real pools: configuration, agreement with the published program, and what it selects."""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import entropy_assets.selection.zip as zip_module
from entropy_assets.compression import KnownSizes, join_samples, make_compressor
from entropy_assets.selection.base import LazyTexts, tiebreak_order
from entropy_assets.selection.baselines import BaselineConfig, baseline_select
from entropy_assets.selection.reference import reference_zip_select
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import load_pool, pool_from_records

ALPACA = "alpaca52k_en_part02_03252-06382.json"
GLAIVE = "llamafactory_glaive_toolcall_en_demo.json"


def _zlib9_ratio(text: bytes) -> float:
    return len(text) / len(zlib.compress(text, 9))


def _canonical_ratio(pool: pl.DataFrame, positions: np.ndarray) -> float:
    """zlib-9 ratio of the selected samples' canonical text, one sample per line."""
    return _zlib9_ratio("\n".join(pool[positions]["text"].to_list()).encode("utf-8"))


def _as_sharegpt(record: dict[str, Any], index: int) -> dict[str, Any]:
    """An Alpaca record in the ShareGPT form the published ZIP program reads."""
    prompt = record["instruction"] + (f"\n{record['input']}" if record["input"] else "")
    return {
        "id": f"alpaca_{index}",
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": record["output"]}],
    }


def _records(pool: pl.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(record) for record in pool["record"]]


@pytest.fixture(scope="module")
def alpaca(raw_dir: Path) -> pl.DataFrame:
    """3130 Alpaca records as a pool."""
    return load_pool(raw_dir / ALPACA).frame


@pytest.fixture(scope="module")
def alpaca_sharegpt(raw_dir: Path) -> pl.DataFrame:
    """The first 400 Alpaca records converted to ShareGPT conversations."""
    records = json.loads((raw_dir / ALPACA).read_text(encoding="utf-8"))[:400]
    return pool_from_records([_as_sharegpt(r, i) for i, r in enumerate(records)], "alpaca_sharegpt").frame


@pytest.fixture(scope="module")
def glaive(raw_dir: Path) -> pl.DataFrame:
    """300 tool-calling conversations, 35 of them exact duplicates of another."""
    return load_pool(raw_dir / GLAIVE).frame


# --- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"k1": 10, "k2": 20, "k3": 5}, r"k1 >= k2 >= k3, got k1=10, k2=20, k3=5"),
        ({"k1": 100, "k2": 20, "k3": 30}, r"k1 >= k2 >= k3, got k1=100, k2=20, k3=30"),
        ({"budget": 0}, r"ZipConfig\.budget must be a positive integer, got 0"),
        ({"budget": -5}, r"ZipConfig\.budget must be a positive integer, got -5"),
        ({"k1": 0}, r"ZipConfig\.k1 must be a positive integer, got 0"),
        ({"k2": -1}, r"ZipConfig\.k2 must be a positive integer, got -1"),
        ({"k3": 0}, r"ZipConfig\.k3 must be a positive integer, got 0"),
        ({"k3": 2.5}, r"ZipConfig\.k3 must be a positive integer, got 2\.5"),
        ({"mode": "fast"}, r"ZipConfig\.mode must be one of default, paper, got 'fast'"),
        ({"mode": "paper"}, r"ZipConfig\.mode 'paper' uses zlib level 9"),
        ({"mode": "paper", "compressor": "zlib", "level": 6}, r"ZipConfig\.mode 'paper' uses zlib level 9"),
        ({"mode": "paper", "compressor": "zlib", "budget_unit": "bytes"}, r"'paper' counts its budget in samples"),
        ({"n_jobs": -1}, r"ZipConfig\.n_jobs must be >= 0, got -1"),
        ({"compressor": "brotli"}, r"unknown compressor 'brotli'"),
        ({"level": 30}, r"zstd level must be 1\.\.22, got 30"),
        ({"budget_unit": "tokens"}, r"budget unit must be one of samples, bytes, got 'tokens'"),
    ],
)
def test_zip_config_names_the_bad_field(settings: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"budget": 10, "k1": 100, "k2": 20, "k3": 5, **settings}
    with pytest.raises(ValueError, match=message):
        ZipConfig(**values)


def test_zip_config_accepts_equal_stage_sizes_and_the_paper_preset() -> None:
    assert ZipConfig(budget=5, k1=5, k2=5, k3=5).k3 == 5
    paper = ZipConfig.paper(budget=5, k1=10, k2=5, k3=5)
    assert (paper.mode, paper.compressor, paper.level, paper.budget_unit) == ("paper", "zlib", None, "samples")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ZipConfig(budget=51, k1=20, k2=10, k3=5), r"budget of 51 samples is larger than the pool \(50 samples\)"),
        (
            ZipConfig.paper(budget=51, k1=20, k2=10, k3=5),
            r"budget of 51 samples is larger than the pool \(50 samples\)",
        ),
    ],
)
def test_budget_larger_than_the_pool_fails_before_any_work(
    config: ZipConfig, message: str, alpaca: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("selection started although the budget cannot be met")

    monkeypatch.setattr(zip_module, "_default_zip", no_work)
    monkeypatch.setattr(zip_module, "_paper_zip", no_work)
    with pytest.raises(ValueError, match=message):
        zip_select(alpaca.head(50), config)


def test_byte_budget_larger_than_the_pool_names_the_pool_bytes(alpaca: pl.DataFrame) -> None:
    pool = alpaca.head(50)
    total = int(pool["n_bytes"].sum())
    config = ZipConfig(budget=total + 1, k1=20, k2=10, k3=5, budget_unit="bytes")
    with pytest.raises(ValueError, match=rf"budget of {total + 1} bytes is larger than the pool \({total} bytes\)"):
        zip_select(pool, config)


# --- paper mode against the published program --------------------------------------------------------------


def test_paper_mode_selects_what_the_published_program_selects_on_alpaca(alpaca_sharegpt: pl.DataFrame) -> None:
    pool = alpaca_sharegpt
    records = _records(pool)
    budget, k1, k2, k3 = 50, 200, 40, 15  # 50 is not a multiple of 15: the last round is cut short

    selection = zip_select(pool, ZipConfig.paper(budget=budget, k1=k1, k2=k2, k3=k3, n_jobs=2))
    expected = reference_zip_select(records, budget, k1, k2, k3, tiebreak=tiebreak_order(pool.height, 0))

    assert selection.positions.tolist() == expected
    assert selection.method == "zip_paper"
    provenance = selection.provenance
    assert provenance["round"].value_counts(sort=True)["count"].to_list() == [15, 15, 15, 5]
    # Scores are the published program's ratios of str() of record lists, exactly.
    first = expected[0]
    assert provenance["stage1_score"][0] == pytest.approx(_zlib9_ratio(str([records[first]]).encode()), rel=1e-12)
    chosen = [records[p] for p in expected]
    assert provenance["set_ratio_after"][-1] == pytest.approx(_zlib9_ratio(str(chosen).encode()), rel=1e-12)
    assert provenance["set_ratio_after"][9] == pytest.approx(_zlib9_ratio(str(chosen[:10]).encode()), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_mode_breaks_ties_between_exact_duplicates_like_the_published_program(
    seed: int, glaive: pl.DataFrame
) -> None:
    pool = glaive
    assert pool.height - pool["content_hash"].n_unique() == 35
    records = _records(pool)
    budget, k1, k2, k3 = 37, 100, 30, 10

    selection = zip_select(pool, ZipConfig.paper(budget=budget, k1=k1, k2=k2, k3=k3, seed=seed, n_jobs=2))
    expected = reference_zip_select(records, budget, k1, k2, k3, tiebreak=tiebreak_order(pool.height, seed))

    assert selection.positions.tolist() == expected
    assert len(expected) == budget


@pytest.fixture(scope="module")
def glaive_triples(glaive: pl.DataFrame) -> pl.DataFrame:
    """60 distinct glaive conversations, each three times (rows i, i + 60, i + 120): every score ties twice."""
    distinct = glaive.unique("content_hash", keep="first", maintain_order=True).head(60)
    return pool_from_records(_records(distinct) * 3, "glaive_triples").frame


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("k1", "k2", "k3"),
    [(100, 31, 10), (40, 7, 5)],  # k1 and k2 cut through a triple; the second set keeps k under a quarter of n
)
def test_paper_mode_cuts_through_tied_copies_like_the_published_program(
    seed: int, k1: int, k2: int, k3: int, glaive_triples: pl.DataFrame
) -> None:
    # Which copy of a triple makes the cut depends on the tie-break alone.
    pool = glaive_triples
    records = _records(pool)
    budget = 25

    selection = zip_select(pool, ZipConfig.paper(budget=budget, k1=k1, k2=k2, k3=k3, seed=seed, n_jobs=2))
    expected = reference_zip_select(records, budget, k1, k2, k3, tiebreak=tiebreak_order(pool.height, seed))

    assert selection.positions.tolist() == expected
    assert len(expected) == budget


def test_paper_mode_seed_decides_which_tied_copy_is_selected(glaive_triples: pl.DataFrame) -> None:
    pool = glaive_triples
    settings: dict[str, Any] = {"budget": 25, "k1": 100, "k2": 31, "k3": 10, "n_jobs": 2}

    by_seed = [zip_select(pool, ZipConfig.paper(seed=seed, **settings)).positions.tolist() for seed in (0, 1)]

    assert by_seed[0] != by_seed[1]
    # The same conversations win the first picks whatever the seed; only the copy differs.
    assert [p % 60 for p in by_seed[0][:3]] == [p % 60 for p in by_seed[1][:3]]


# --- what default mode selects ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def near_duplicates(raw_dir: Path) -> pl.DataFrame:
    """300 Alpaca records with outputs of 200+ characters; rows 300..399 repeat rows 0..99 with one word changed."""
    originals = [r for r in json.loads((raw_dir / ALPACA).read_text(encoding="utf-8")) if len(r["output"]) >= 200]
    originals = originals[:300]

    def one_word_changed(record: dict[str, Any]) -> dict[str, Any]:
        words = record["output"].split(" ")
        middle = len(words) // 2
        words[middle] = "truly" if words[middle] == "indeed" else "indeed"
        return {**record, "output": " ".join(words)}

    pool = pool_from_records([*originals, *map(one_word_changed, originals[:100])], "near_duplicates").frame
    assert pool.height == 400 and pool["content_hash"].n_unique() == 400
    return pool


def _both_twins_chosen(positions: np.ndarray) -> int:
    """How many of the 100 near-duplicate pairs of ``near_duplicates`` have both members selected."""
    chosen = set(positions.tolist())
    return sum(1 for i in range(100) if i in chosen and 300 + i in chosen)


def test_zip_prefers_novel_samples_over_near_duplicates(near_duplicates: pl.DataFrame) -> None:
    pool = near_duplicates
    budget = 200

    zip_pairs = _both_twins_chosen(zip_select(pool, ZipConfig(budget=budget, k1=400, k2=60, k3=20, n_jobs=2)).positions)
    random_pairs = np.mean(
        [
            _both_twins_chosen(baseline_select(pool, BaselineConfig("random", budget, seed=s)).positions)
            for s in range(5)
        ]
    )

    # Random keeps about a quarter of the pairs (100 * 200/400 * 199/399 = 25); ZIP keeps novel text instead.
    assert random_pairs >= 15
    assert zip_pairs <= 2


def test_zip_avoids_near_duplicates_within_a_round_of_the_default_size(near_duplicates: pl.DataFrame) -> None:
    config = ZipConfig(budget=200, k1=400, k2=200, k3=100, n_jobs=2)  # k2 and k3 are ZipConfig's defaults

    assert _both_twins_chosen(zip_select(near_duplicates, config).positions) <= 2


def test_zip_selects_a_less_redundant_set_than_random_or_paper_mode(alpaca: pl.DataFrame) -> None:
    pool = alpaca.head(1500)
    settings = {"k1": 600, "k2": 60, "k3": 30, "n_jobs": 2}

    default = zip_select(pool, ZipConfig(budget=150, **settings))
    paper = zip_select(pool, ZipConfig.paper(budget=150, **settings))
    randoms = [baseline_select(pool, BaselineConfig("random", 150, seed=s)) for s in range(3)]

    default_ratio = _canonical_ratio(pool, default.positions)
    assert default_ratio < min(_canonical_ratio(pool, r.positions) for r in randoms)
    assert default_ratio <= _canonical_ratio(pool, paper.positions)
    # The provenance's running set ratio is an estimate from marginal sizes; it tracks the real zstd ratio.
    texts = [t.encode("utf-8") for t in pool[default.positions]["text"]]
    actual = make_compressor("zstd").ratio(join_samples(texts))
    assert default.provenance["set_ratio_after"][-1] == pytest.approx(actual, rel=0.02)


# --- determinism, provenance, progress --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["default", "paper"])
def test_same_config_gives_the_same_selection(mode: str, alpaca: pl.DataFrame) -> None:
    pool = alpaca.head(600)
    settings: dict[str, Any] = {"budget": 60, "k1": 300, "k2": 40, "k3": 20, "seed": 7, "n_jobs": 2}
    config = ZipConfig(**settings) if mode == "default" else ZipConfig.paper(**settings)

    first = zip_select(pool, config)
    second = zip_select(pool, config)

    assert first.provenance.equals(second.provenance)
    assert first.config == second.config == asdict(config)


def _check_provenance(selection: Any, pool: pl.DataFrame, k3: int) -> pl.DataFrame:
    provenance = selection.provenance
    n = provenance.height
    positions = provenance["position"].to_list()
    assert len(set(positions)) == n
    assert provenance["rank"].to_list() == list(range(n))
    assert provenance["id"].to_list() == pool["id"].gather(positions).to_list()
    assert selection.subset(pool)["id"].to_list() == provenance["id"].to_list()
    rounds = provenance["round"].to_numpy()
    assert rounds[0] == 0 and np.all(np.diff(rounds) >= 0) and np.all(np.diff(rounds) <= 1)
    assert np.bincount(rounds).max() <= k3
    assert (provenance["marginal_bytes"] > 0).all()
    assert (provenance["set_ratio_after"] > 0).all()
    assert provenance.null_count().select(pl.all().sum()).row(0) == (0,) * provenance.width
    assert selection.summary["selected"] == n
    assert selection.summary["selected_bytes"] == int(pool["n_bytes"].gather(positions).sum())
    assert selection.summary["rounds"] == rounds[-1] + 1
    return provenance


@pytest.mark.parametrize("mode", ["default", "paper"])
def test_provenance_has_one_consistent_row_per_selected_sample(mode: str, alpaca: pl.DataFrame) -> None:
    pool = alpaca.head(800)
    settings: dict[str, Any] = {"budget": 90, "k1": 400, "k2": 50, "k3": 20, "n_jobs": 2}
    config = ZipConfig(**settings) if mode == "default" else ZipConfig.paper(**settings)

    selection = zip_select(pool, config)

    provenance = _check_provenance(selection, pool, k3=20)
    assert provenance.height == 90
    assert provenance["round"].value_counts(sort=True)["count"].to_list() == [20, 20, 20, 20, 10]


def test_byte_budget_is_filled_by_the_last_pick(alpaca: pl.DataFrame) -> None:
    pool = alpaca.head(800)
    budget = 20_000
    selection = zip_select(pool, ZipConfig(budget=budget, k1=400, k2=50, k3=20, budget_unit="bytes", n_jobs=2))

    provenance = _check_provenance(selection, pool, k3=20)
    sizes = pool["n_bytes"].gather(provenance["position"]).to_numpy()
    assert sizes.sum() >= budget
    assert sizes[:-1].sum() < budget


@pytest.mark.parametrize(
    ("file", "fmt"),
    [("llamafactory_dpo_en_demo.json", "preference"), ("pretrain_c4_demo.jsonl", "text")],
)
def test_zip_selects_from_preference_pairs_and_plain_text(file: str, fmt: str, raw_dir: Path) -> None:
    pool = load_pool(raw_dir / file).frame
    assert set(pool["format"]) == {fmt}

    selection = zip_select(pool, ZipConfig(budget=40, k1=200, k2=40, k3=20, n_jobs=2))

    assert len(selection) == 40
    _check_provenance(selection, pool, k3=20)


@pytest.mark.parametrize("mode", ["default", "paper"])
def test_progress_reports_the_count_after_each_round(mode: str, alpaca: pl.DataFrame) -> None:
    pool = alpaca.head(500)
    settings: dict[str, Any] = {"budget": 55, "k1": 200, "k2": 40, "k3": 20, "n_jobs": 2}
    config = ZipConfig(**settings) if mode == "default" else ZipConfig.paper(**settings)
    counts: list[int] = []

    selection = zip_select(pool, config, progress=counts.append)

    assert counts == [20, 40, 55]
    assert len(counts) == selection.summary["rounds"]
    assert counts[-1] == len(selection)


def test_zip_reads_only_its_candidates_text_when_the_text_is_lazy(alpaca: pl.DataFrame) -> None:
    """From a frame without text, with the scores' sizes, ZIP reads the bytes of the candidates its rounds reach
    (stage 1's best first, a few scans) and selects what it selects from the whole pool's text."""
    config = ZipConfig(budget=60, k1=80, k2=20, k3=10)
    compressor = make_compressor(config.compressor, config.level)
    texts = [text.encode() for text in alpaca["text"].to_list()]
    known = KnownSizes(compressor.describe(), compressor.compressed_sizes(texts))
    whole = zip_select(alpaca, config, known=known)
    scans: list[int] = []

    def fetch(positions: np.ndarray) -> list[bytes]:
        scans.append(len(positions))
        return [texts[p] for p in positions]

    priority = np.argsort(alpaca["n_bytes"].to_numpy() / known.sizes, kind="stable")
    lazy = LazyTexts(alpaca["n_bytes"].to_numpy(), alpaca["content_hash"].to_list(), fetch, priority, 4 * config.k1)
    light = zip_select(alpaca.select("id", "content_hash", "n_bytes"), config, known=known, texts=lazy)
    assert light.provenance.equals(whole.provenance)
    assert lazy.held < alpaca.height / 2 and lazy.reads == len(scans) <= 4
