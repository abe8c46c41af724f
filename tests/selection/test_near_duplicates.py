"""Near-duplicate keys and the first of each cluster: the greedy pass over shared keys keeps what an LSH index that
is queried, then inserted into, keeps; templated copies are found and unrelated records are not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from entropy_assets.selection.near_duplicates import (
    BAND_COLUMNS,
    NUM_PERM,
    band_keys,
    first_of_clusters,
    first_of_near_duplicates,
    shingle_hashes,
    signatures,
)

ALPACA = "alpaca52k_en_part01_00000-03252.json"


def _index_reference(keys: np.ndarray) -> np.ndarray:
    """An LSH index one sample at a time: kept when no band key of an earlier kept sample matches."""
    seen: list[set[int]] = [set() for _ in range(keys.shape[1])]
    kept = []
    for position, row in enumerate(keys.tolist()):
        if not any(key in band for key, band in zip(row, seen, strict=True)):
            kept.append(position)
            for key, band in zip(row, seen, strict=True):
                band.add(key)
    return np.asarray(kept, dtype=np.int64)


def test_first_of_clusters_keeps_what_an_index_keeps() -> None:
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**63, size=(3000, len(BAND_COLUMNS)), dtype=np.uint64)
    for _ in range(2500):  # chains and stars of shared keys: a sample dropped by a kept one drops no other
        a, b = rng.integers(0, 3000, size=2)
        band = rng.integers(0, len(BAND_COLUMNS))
        keys[b, band] = keys[a, band]
    kept = first_of_clusters(lambda band: keys[:, band], len(keys))
    assert kept.tolist() == _index_reference(keys).tolist()
    assert 0 < len(kept) < len(keys)


def test_templated_copies_are_near_duplicates_and_originals_are_not(raw_dir: Path) -> None:
    records = json.loads((raw_dir / ALPACA).read_text(encoding="utf-8"))[:200]
    texts = [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in records]
    copies = [f"{text} (ref {i})" for i, text in enumerate(texts) if len(text.split()) > 40]
    kept = first_of_near_duplicates(pl.Series([*texts, *copies]))
    assert kept.tolist() == list(range(len(texts)))  # long records with a counter appended: every copy found
    keys = band_keys(pl.Series([*texts, *copies]))
    assert keys.columns == list(BAND_COLUMNS) and keys.height == len(texts) + len(copies)


def test_signatures_estimate_jaccard_and_cover_empty_and_short_texts() -> None:
    hashes, offsets = shingle_hashes(pl.Series(["a b c d e f", "", "x y", None]))
    assert offsets.tolist() == [0, 2, 3, 4, 5]  # 2 shingles; one empty; one of the two words; null as empty
    assert hashes[2] == hashes[4]  # the empty text and a null have the same single shingle
    words = [f"w{i}" for i in range(204)]
    half = " ".join(words[:150]), " ".join(words[50:])  # 146 and 150 shingles, 96 shared: Jaccard 0.48
    left, right = signatures(pl.Series(half))
    assert abs((left == right).mean() - 96 / 200) < 4 * np.sqrt(0.25 / NUM_PERM)
    assert signatures(pl.Series([], dtype=pl.String)).shape == (0, NUM_PERM)
