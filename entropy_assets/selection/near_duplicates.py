"""Near-duplicate detection with MinHash and locality-sensitive hashing (``datasketch``): a sample whose word 5-gram
set overlaps an earlier kept one's by about ``THRESHOLD`` (Jaccard) or more is its near-duplicate, and only the
first of each cluster is kept.

Exact-copy removal misses the commonest near-duplicates of instruction data: one template with a counter or a name
changed. MinHash with 128 permutations estimates Jaccard similarity within about 0.04, and the LSH index finds
candidates without comparing every pair. The settings were chosen on the bad update of
``examples/data_update_risk.py`` (20 Alpaca records repeated 30 times with a counter appended, beside 300
originals): at 0.7 and 128 permutations 2 of the 600 copies pass and no original is dropped; at 0.8 and 64
permutations, 21 pass (short records change most when a counter is added).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SHINGLE_WORDS = 5
NUM_PERM = 128
THRESHOLD = 0.7
_WORD = re.compile(r"\w+")


def shingles(text: str, words: int = SHINGLE_WORDS) -> list[bytes]:
    """The distinct word ``words``-grams of ``text``, lowercased (the whole text when shorter)."""
    tokens = _WORD.findall(text.lower())
    return list({" ".join(tokens[i : i + words]).encode() for i in range(max(len(tokens) - words + 1, 1))})


def first_of_near_duplicates(texts: Sequence[str], threshold: float = THRESHOLD) -> np.ndarray:
    """Positions of the texts that are not near-duplicates of an earlier one, in order."""
    from datasketch import MinHash, MinHashLSH

    signatures = MinHash.bulk([shingles(text) for text in texts], num_perm=NUM_PERM)
    index = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    kept: list[int] = []
    for position, signature in enumerate(signatures):
        if not index.query(signature):
            index.insert(position, signature)
            kept.append(position)
    return np.asarray(kept, dtype=np.int64)
