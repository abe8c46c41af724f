"""Model-free diversity figures on known sets and on real records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entropy_assets.diversity import distinct_ngrams, ngram_vendi

ALPACA = "alpaca52k_en_part01_00000-03252.json"


def test_known_sets() -> None:
    same = ["the cat sat on the mat"] * 40
    assert ngram_vendi(same) == pytest.approx(1.0)
    assert distinct_ngrams(same) == pytest.approx(5 / 200)
    apart = [f"word{i} other{i} third{i}" for i in range(40)]
    assert distinct_ngrams(apart) == 1.0
    assert ngram_vendi(apart) > 30  # 40 texts sharing no bigram; hashing merges a few
    assert distinct_ngrams([""]) == 0.0 and ngram_vendi(["", "one"]) == 0.0


def test_near_duplicates_lower_both_figures(raw_dir: Path) -> None:
    records = json.loads((raw_dir / ALPACA).read_text(encoding="utf-8"))
    texts = [f"{r['instruction']} {r['input']} {r['output']}" for r in records[:300]]
    copies = [f"{texts[i % 20]} (ref {i})" for i in range(300)]
    assert distinct_ngrams(copies) < distinct_ngrams(texts) / 3
    assert ngram_vendi(copies) < ngram_vendi(texts) / 3
