"""Model-free diversity figures on known sets and on real records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from entropy_assets.diversity import VENDI_DIMENSIONS, Diversity, _ngrams, distinct_ngrams, ngram_diversity, ngram_vendi

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


def test_figures_taken_a_block_at_a_time_equal_the_whole_sets(raw_dir: Path) -> None:
    records = json.loads((raw_dir / ALPACA).read_text(encoding="utf-8"))
    texts = [f"{r['instruction']} {r['input']} {r['output']}" for r in records[:2500]]  # three blocks of 1,024
    grams = _ngrams(texts, 2)  # every bigram of the set at once, as the figures were taken before blocks
    found = ngram_diversity(texts)
    assert found.distinct == grams["gram"].n_unique() / grams.height
    # the Vendi score from the n x n similarity matrix of the texts' unit-length hashed bigram counts
    hashed = grams.select("row", feature=(pl.col("gram").hash(seed=0) % VENDI_DIMENSIONS).cast(pl.Int64))
    rows = sorted(set(hashed["row"].to_list()))
    matrix = np.zeros((len(texts), VENDI_DIMENSIONS))
    np.add.at(matrix, (hashed["row"].to_numpy(), hashed["feature"].to_numpy()), 1.0)
    matrix = matrix[rows] / np.linalg.norm(matrix[rows], axis=1, keepdims=True)
    eigenvalues = np.linalg.eigvalsh(matrix @ matrix.T / len(rows))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    assert found.vendi == pytest.approx(float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues)))), rel=1e-9)
    assert ngram_diversity([]) == Diversity(0.0, 0.0)
