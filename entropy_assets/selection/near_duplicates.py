"""Near-duplicate detection with MinHash and locality-sensitive hashing: a sample whose word 5-gram set overlaps an
earlier kept one's by about ``THRESHOLD`` (Jaccard) or more is its near-duplicate, and only the first of each cluster
is kept.

Exact-copy removal misses the commonest near-duplicates of instruction data: one template with a counter or a name
changed. A sample's signature is its R-MinHash of 128 slots (``rensa``, in Rust) over the hashes of its lowercased
word 5-grams (made in polars and numpy, a batch of texts at a time); the signature is cut into ``BANDS`` bands of
``ROWS`` slots, and two samples are candidates when one band is equal, as datasketch's ``MinHashLSH`` pairs them at
this threshold (its optimal banding for 0.7 and 128 permutations is 14 bands of 9). A band is kept as a 64-bit hash:
``band_keys`` is all that the choice reads, 112 bytes a sample, so that a pool of any size is deduplicated from its
keys (stored per pool part, ``stages.pool_features``) without its text.

The settings were chosen on the bad update of ``examples/data_update_risk.py`` (20 Alpaca records repeated 30 times
with a counter appended, beside 300 originals): at 0.7 and 128 permutations no original is dropped and few copies
pass, all of them copies of one record whose 5 shingles are at Jaccard 0.71 from each copy (LSH finds such a pair
about half the time); over 20 seeds 5.65 of the 600 copies passed on average (datasketch's MinHash: 5.8), 8 at the
seed used here. Signatures cost about 60 us per 1 KB sample on one core (polars' Unicode word split is most of it;
datasketch's MinHash took about 500 us).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import numpy as np
import polars as pl

SHINGLE_WORDS = 5
NUM_PERM = 128
THRESHOLD = 0.7
BANDS = 14
ROWS = 9
"""LSH banding for ``THRESHOLD`` at ``NUM_PERM``: the bands and slots per band that datasketch's ``MinHashLSH``
chooses (``_optimal_param(0.7, 128)``), minimizing the weighted chance of a false pair or a missed one."""
BAND_COLUMNS: tuple[str, ...] = tuple(f"band_{band:02d}" for band in range(BANDS))
"""The columns of ``band_keys``."""
SEED = 1
_WORD = r"\w+"
_MIX = np.uint64(0x100000001B3)


def shingle_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hashes of each text's lowercased word ``SHINGLE_WORDS``-grams (a text of fewer words: one shingle
    of them all; of none: one empty shingle), flat, and the offsets where each text's hashes start and end."""
    words = texts.fill_null("").str.to_lowercase().str.extract_all(_WORD)
    counts = words.list.len().fill_null(0).to_numpy().astype(np.int64)
    slots = np.maximum(counts, 1)  # explode leaves one null for a text without words
    hashes = words.explode(empty_as_null=True).hash(seed=SEED).to_numpy()
    starts = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
    position = np.arange(len(hashes), dtype=np.int64) - np.repeat(starts, slots)
    remaining = np.repeat(slots, slots) - position  # words from this one to the end of its text, itself included
    combined = np.zeros(len(hashes), dtype=np.uint64)
    padded = np.concatenate([hashes, np.zeros(SHINGLE_WORDS - 1, dtype=np.uint64)])
    with np.errstate(over="ignore"):
        for offset in range(SHINGLE_WORDS):
            word = np.where(remaining > offset, padded[offset : offset + len(hashes)], np.uint64(0))
            combined = (combined * _MIX) ^ word
    shingles = np.maximum(slots - SHINGLE_WORDS + 1, 1)
    first = position < np.repeat(shingles, slots)
    offsets = np.concatenate([[0], np.cumsum(shingles)]).astype(np.uint64)
    return combined[first], offsets


def signatures(texts: pl.Series) -> np.ndarray:
    """Each text's R-MinHash signature over its shingles, as a ``(len(texts), NUM_PERM)`` uint32 array."""
    from rensa import RMinHash

    if texts.is_empty():
        return np.zeros((0, NUM_PERM), dtype=np.uint32)
    hashes, offsets = shingle_hashes(texts)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm=NUM_PERM, seed=SEED)
    return np.asarray(matrix.to_rows(), dtype=np.uint32)


def band_keys(texts: pl.Series) -> pl.DataFrame:
    """Each text's LSH band keys (``BAND_COLUMNS``, uint64): the hash of each band of ``ROWS`` signature slots."""
    names = [f"s{slot}" for slot in range(BANDS * ROWS)]
    slots = pl.DataFrame(signatures(texts)[:, : BANDS * ROWS], schema=names, orient="row")
    return slots.select(
        pl.struct(slots.columns[band * ROWS : (band + 1) * ROWS]).hash(seed=SEED).alias(name)
        for band, name in enumerate(BAND_COLUMNS)
    )


def first_of_near_duplicates(texts: pl.Series | list[str]) -> np.ndarray:
    """Positions of the texts that are not near-duplicates of an earlier one, in order."""
    keys = band_keys(pl.Series("text", texts, dtype=pl.String))
    return first_of_clusters(lambda band: keys[BAND_COLUMNS[band]].to_numpy(), keys.height)


def first_of_clusters(band: Callable[[int], np.ndarray], samples: int) -> np.ndarray:
    """Positions of the samples, in order, that share no band key with an earlier kept one: ``band(b)`` gives every
    sample's key in band ``b``, one band at a time. A sample is kept unless an earlier *kept* sample has one of its
    keys, as a MinHash LSH index does that is queried, then inserted into when the query finds nothing.

    Only samples with a key that another sample also has can be dropped or drop one: their keys' groups are numbered
    band by band (a band's keys are held one at a time), and the greedy pass runs over them alone."""
    shared = np.zeros(samples, dtype=bool)
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    positions = np.int32 if samples < 2**31 else np.int64  # 14 bands of rows and groups: half the memory
    for index in range(BANDS):
        rows, group = _repeated_keys(np.asarray(band(index), dtype=np.uint64))
        groups.append((rows.astype(positions), group.astype(positions)))
        shared[rows] = True
    candidates = np.flatnonzero(shared)
    kept = np.ones(samples, dtype=bool)
    if len(candidates):
        kept[candidates] = _greedy(candidates, groups)
    return np.flatnonzero(kept).astype(np.int64)


def _repeated_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the keys that more than one sample holds, and each one's group: its rank among the distinct
    repeated keys. By sorting, not hashing: a hash table over ten million keys held about 500 MB a band, a sorted copy
    80 MB."""
    ordered = np.sort(keys)
    values = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])  # the distinct keys held more than once
    del ordered
    if not len(values):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    group = np.searchsorted(values, keys)
    np.minimum(group, len(values) - 1, out=group)
    rows = np.flatnonzero(values[group] == keys)
    return rows, group[rows]


def _greedy(candidates: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Whether each of ``candidates`` is kept, in order: dropped when a band group it is in holds a kept sample."""
    ids: list[array[int]] = []
    blocked: list[bytearray] = []
    for rows, group in groups:
        column = np.full(len(candidates), -1, dtype=group.dtype)
        column[np.searchsorted(candidates, rows)] = group
        ids.append(array("i" if group.dtype == np.int32 else "q", column.tobytes()))
        blocked.append(bytearray(int(group.max()) + 1 if len(group) else 0))
    kept = bytearray(len(candidates))
    bands = range(len(groups))
    for position in range(len(candidates)):
        if any(ids[band][position] >= 0 and blocked[band][ids[band][position]] for band in bands):
            continue
        kept[position] = 1
        for band in bands:
            if ids[band][position] >= 0:
                blocked[band][ids[band][position]] = 1
    return np.frombuffer(bytes(kept), dtype=np.uint8).astype(bool)
