"""Model-free diversity of a set of texts, reported beside its compression ratio R: the share of distinct word
n-grams (distinct-n, Li et al. 2016), and the n-gram Vendi score (Friedman and Dieng, 2023) over hashed word n-gram
counts.

The Vendi score is the exponential of the Shannon entropy of the eigenvalues of ``K / n``, ``K`` the cosine
similarity matrix of the texts: 1 when every text is the same, ``n`` when no two share an n-gram. It is computed
from the ``d x d`` matrix ``X^T X / n`` (the same non-zero eigenvalues), so its cost grows with the set linearly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

VENDI_DIMENSIONS = 1024
"""Hashed feature dimensions of the Vendi score: collisions merge rare n-grams, which lowers the score a little for
large, varied sets; the same for every subset compared."""


_TEXT_BLOCK = 1024
"""Texts whose n-grams are made at once."""


def _ngrams(texts: Sequence[str], n: int) -> pl.DataFrame:
    """Every word n-gram of every text (lowercased ``\\w+`` words): columns ``row`` and ``gram``. The words of all
    texts stand in one column, a text's after the one before: an n-gram is ``n`` words from one place whose last
    word belongs to the same text as its first."""
    words = (
        pl.DataFrame({"text": list(texts)})
        .with_row_index("row")
        .select("row", word=pl.col("text").str.to_lowercase().str.extract_all(r"\w+"))
        .explode("word")
        .drop_nulls("word")
    )
    gram = pl.concat_str([pl.col("word").shift(-k) for k in range(n)], separator=" ")
    same_text = pl.col("row").shift(-(n - 1)) == pl.col("row")
    return words.select("row", gram=pl.when(same_text).then(gram)).drop_nulls("gram")


@dataclass(frozen=True)
class Diversity:
    """A set's distinct-n and n-gram Vendi score, from one pass over its n-grams."""

    distinct: float
    vendi: float


def ngram_diversity(texts: Sequence[str], n: int = 2, dimensions: int = VENDI_DIMENSIONS) -> Diversity:
    """Both figures of the texts, their n-grams taken once, ``_TEXT_BLOCK`` texts at a time: memory holds one
    block's n-grams, the distinct n-grams' 64-bit hashes and the ``d x d`` matrix, not every n-gram of the set."""
    distinct = _DistinctHashes()
    total, texts_with_grams = 0, 0
    gram = np.zeros((dimensions, dimensions))
    for start in range(0, len(texts), _TEXT_BLOCK):
        hashes = _ngrams(texts[start : start + _TEXT_BLOCK], n).select("row", hash=pl.col("gram").hash(seed=0))
        if hashes.is_empty():
            continue
        total += hashes.height
        distinct.add(hashes["hash"])
        block, rows = _feature_gram(hashes, dimensions)
        gram += block
        texts_with_grams += rows
    if not total:
        return Diversity(0.0, 0.0)
    return Diversity(distinct.count() / total, _vendi_of(gram / texts_with_grams))


class _DistinctHashes:
    """The distinct values of the hashes added so far: each block's distinct hashes wait beside those merged, and
    are merged into them once they are as many (each hash is merged about log2 of the blocks' times, not once per
    block as with a running union)."""

    def __init__(self) -> None:
        self._merged = pl.Series("hash", [], dtype=pl.UInt64)
        self._pending: list[pl.Series] = []
        self._pending_rows = 0

    def add(self, hashes: pl.Series) -> None:
        block = hashes.unique()
        self._pending.append(block)
        self._pending_rows += len(block)
        if self._pending_rows >= len(self._merged):
            self._merge()

    def count(self) -> int:
        self._merge()
        return len(self._merged)

    def _merge(self) -> None:
        if self._pending:
            self._merged = pl.concat([self._merged, *self._pending]).unique()
            self._pending, self._pending_rows = [], 0


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams of the set (0 for a set without any): n-grams compared by their 64-bit
    hash (a collision among ten million distinct n-grams has a chance of about 3 in a million)."""
    return ngram_diversity(texts, n).distinct


def ngram_vendi(texts: Sequence[str], n: int = 2, dimensions: int = VENDI_DIMENSIONS) -> float:
    """The Vendi score of the texts' hashed word n-gram count vectors (unit length; a text without n-grams is
    left out)."""
    return ngram_diversity(texts, n, dimensions).vendi


def _feature_gram(hashes: pl.DataFrame, dimensions: int) -> tuple[np.ndarray, int]:
    """``X^T X`` of one block's texts (rows: unit-length hashed n-gram counts) and how many texts it holds."""
    rows = hashes["row"].to_numpy().astype(np.int64)
    features = (hashes["hash"] % dimensions).to_numpy().astype(np.int64)
    texts = int(rows.max()) + 1
    block = np.bincount(rows * dimensions + features, minlength=texts * dimensions).reshape(texts, dimensions)
    block = block[block.any(axis=1)].astype(np.float64)  # a text without n-grams is left out
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    return block.T @ block, len(block)


def _vendi_of(gram: np.ndarray) -> float:
    eigenvalues = np.linalg.eigvalsh(gram)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))
