"""The quality gate on real records: one noisy field fails a sample, every kind of planted noise is excluded, real
files keep nearly all their records, signals are reused by content hash, and off excludes nothing."""

import json
import random
from pathlib import Path

import polars as pl
import pytest

from entropy_assets.compression import make_compressor
from entropy_assets.noise import NOISE_KINDS, noise, noisy_records
from entropy_assets.quality import DEFAULT, OFF, QualitySettings, character_entropy, encoded_chars
from entropy_assets.scoring import gate_scores, gated_samples, score_samples
from entropy_assets.sources import load_pool

REAL_FILES = (
    "code_alpaca_2k.json",
    "llamafactory_alpaca_zh_demo.json",
    "llamafactory_glaive_toolcall_en_demo.json",
    "fastchat_dummy_conversation.json",
    "pretrain_c4_demo.jsonl",
    "pretrain_wiki_demo.txt",
    "llamafactory_dpo_en_demo.json",
)


@pytest.fixture(scope="module")
def alpaca(raw_dir: Path) -> list[dict[str, str]]:
    return json.loads((raw_dir / "alpaca52k_en_part02_03252-06382.json").read_text())


def gated(records: list[dict[str, str]], tmp_path: Path) -> pl.DataFrame:
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records, ensure_ascii=False))
    return gated_samples(load_pool([path]).frame, DEFAULT)


def test_one_encoded_line_in_an_answer_fails_the_sample(alpaca: list[dict[str, str]], tmp_path: Path) -> None:
    record = alpaca[10]
    attachment = noise("base64", 2048, random.Random(0))
    frame = gated([record, {**record, "output": f"{record['output']}\n{attachment}"}], tmp_path)
    assert frame["excluded"].to_list() == [None, "encoded"]
    assert frame["excluded_value"][1] >= 2000  # the line's characters, recorded beside the reason
    assert frame["encoded_chars"][0] == 0


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_kind_of_planted_noise_is_excluded(kind: str, alpaca: list[dict[str, str]], tmp_path: Path) -> None:
    """At least 99% of records carrying an encoded blob, a hex dump or random characters; at least 95% of those
    carrying mojibake or random code points, which only their ratio and stray characters give away."""
    frame = gated(noisy_records(alpaca[:200], kind, "output", seed=3), tmp_path)
    allowed = 10 if kind in ("mojibake", "random_unicode") else 2
    assert frame["excluded"].null_count() <= allowed, frame.filter(pl.col("excluded").is_null())


def test_real_files_keep_at_least_99_5_percent_of_their_records(raw_dir: Path) -> None:
    for name in REAL_FILES:
        frame = gated_samples(load_pool([raw_dir / name]).frame, DEFAULT)
        assert frame["excluded"].is_not_null().mean() <= 0.005, (name, frame.filter(pl.col("excluded").is_not_null()))


def test_chinese_code_and_long_urls_are_not_encoded(raw_dir: Path) -> None:
    zh = load_pool([raw_dir / "llamafactory_alpaca_zh_demo.json"]).frame["text"]
    assert max(encoded_chars(text) for text in zh.to_list()) == 0
    assert encoded_chars("see https://example.com/a/very/long/path/with/words/in/it/and/more/words/here.html") == 0
    assert character_entropy("abab") == 1.0


def test_signals_are_reused_by_content_hash_and_thresholds_are_settings(raw_dir: Path) -> None:
    frame = load_pool([raw_dir / "code_alpaca_2k.json"]).frame.select("id", "content_hash", "n_bytes", "text")
    sizes, _ = score_samples(frame, make_compressor("zstd"))
    first, measured = gate_scores(sizes, frame, DEFAULT)
    assert measured == frame.height
    again, measured = gate_scores(sizes, frame, DEFAULT, previous=first.head(1500))
    assert measured == frame.height - 1500 and again.equals(first)
    strict, _ = gate_scores(sizes, frame, QualitySettings(max_encoded_chars=64), previous=first)
    assert strict["excluded"].is_not_null().sum() > first["excluded"].is_not_null().sum()
    off, _ = gate_scores(sizes, frame, OFF, previous=first)
    assert off["excluded"].null_count() == frame.height


def test_the_gate_judges_zstd_ratios_whatever_the_compressor(alpaca: list[dict[str, str]], tmp_path: Path) -> None:
    path = tmp_path / "noisy.json"
    path.write_text(json.dumps(alpaca[:50] + noisy_records(alpaca[50:60], "mojibake", "output"), ensure_ascii=False))
    frame = load_pool([path]).frame.select("id", "content_hash", "n_bytes", "text")
    zstd, _ = gate_scores(score_samples(frame, make_compressor("zstd"))[0], frame, DEFAULT)
    zlib, _ = gate_scores(score_samples(frame, make_compressor("zlib"))[0], frame, DEFAULT)
    assert zlib["excluded"].to_list() == zstd["excluded"].to_list()
    assert zstd["excluded"].head(50).null_count() == 50 and zstd["excluded"].tail(10).null_count() == 0


def test_bad_thresholds_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="max_other_share"):
        QualitySettings(max_other_share=0)
    with pytest.raises(ValueError, match="max_encoded_chars"):
        QualitySettings(max_encoded_chars=10)
