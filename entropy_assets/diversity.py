"""Model-free diversity of a set of texts, reported beside its compression ratio R: the share of distinct word
n-grams (distinct-n, Li et al. 2016), and the n-gram Vendi score (Friedman and Dieng, 2023) over hashed word n-gram
counts.

The Vendi score is the exponential of the Shannon entropy of the eigenvalues of ``K / n``, ``K`` the cosine
similarity matrix of the texts: 1 when every text is the same, ``n`` when no two share an n-gram. It is computed
from the ``d x d`` matrix ``X^T X / n`` (the same non-zero eigenvalues), so its cost grows with the set linearly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

VENDI_DIMENSIONS = 1024
"""Hashed feature dimensions of the Vendi score: collisions merge rare n-grams, which lowers the score a little for
large, varied sets; the same for every subset compared."""


_VENDI_BLOCK = 8192
"""Texts whose feature rows are made at once for the Vendi score."""


def _ngrams(texts: Sequence[str], n: int) -> pl.DataFrame:
    """Every word n-gram of every text (lowercased ``\\w+`` words): columns ``row`` and ``gram``."""
    words = (
        pl.DataFrame({"text": list(texts)})
        .with_row_index("row")
        .select("row", word=pl.col("text").str.to_lowercase().str.extract_all(r"\w+"))
        .explode("word")
        .drop_nulls("word")
    )
    shifted = [pl.col("word").shift(-k).over("row") for k in range(n)]
    return words.select("row", gram=pl.concat_str(shifted, separator=" ")).drop_nulls("gram")


@dataclass(frozen=True)
class Diversity:
    """A set's distinct-n and n-gram Vendi score, from one pass over its n-grams."""

    distinct: float
    vendi: float


def ngram_diversity(texts: Sequence[str], n: int = 2, dimensions: int = VENDI_DIMENSIONS) -> Diversity:
    """Both figures of the texts, their n-grams taken once."""
    grams = _ngrams(texts, n)
    return Diversity(_distinct(grams), _vendi(grams, dimensions))


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams of the set (0 for a set without any)."""
    return _distinct(_ngrams(texts, n))


def ngram_vendi(texts: Sequence[str], n: int = 2, dimensions: int = VENDI_DIMENSIONS) -> float:
    """The Vendi score of the texts' hashed word n-gram count vectors (unit length; a text without n-grams is
    left out)."""
    return _vendi(_ngrams(texts, n), dimensions)


def _distinct(grams: pl.DataFrame) -> float:
    return grams["gram"].n_unique() / grams.height if grams.height else 0.0


def _vendi(grams: pl.DataFrame, dimensions: int) -> float:
    if grams.is_empty():
        return 0.0
    counts = (
        grams.select("row", feature=(pl.col("gram").hash(seed=0) % dimensions).cast(pl.Int64))
        .group_by("row", "feature")
        .len()
    )
    counts = counts.sort("row")
    _, dense_rows = np.unique(counts["row"].to_numpy(), return_inverse=True)
    features, values = counts["feature"].to_numpy(), counts["len"].to_numpy().astype(np.float64)
    texts = int(dense_rows.max()) + 1
    # X^T X summed over blocks of texts: memory holds one block of rows, not the n x d matrix (800 MB for 100,000).
    gram = np.zeros((dimensions, dimensions))
    bounds = np.searchsorted(dense_rows, np.arange(0, texts + _VENDI_BLOCK, _VENDI_BLOCK))
    for first, (start, stop) in enumerate(itertools.pairwise(bounds)):
        if start == stop:
            continue
        block = np.zeros((int(dense_rows[stop - 1]) - first * _VENDI_BLOCK + 1, dimensions))
        np.add.at(block, (dense_rows[start:stop] - first * _VENDI_BLOCK, features[start:stop]), values[start:stop])
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        gram += block.T @ block
    eigenvalues = np.linalg.eigvalsh(gram / texts)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))
