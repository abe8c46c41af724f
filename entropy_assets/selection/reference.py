"""The published ZIP program's semantics by plain full recompression: slow, simple, the yardstick.

Every candidate recompresses ``str()`` of the whole list of records with zlib level 9, as the published code
does. Used to check that ``paper`` mode selects the same records, and as the benchmarks' baseline.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from multiprocessing import Pool
from typing import Any

import numpy as np


def _ratio(records: list[Any]) -> float:
    text = str(records).encode("utf-8")
    return len(text) / len(zlib.compress(text, 9))


def _stable_smallest(scores: Sequence[float], tiebreak: Sequence[int], k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (scores[i], tiebreak[i]))[:k]


def reference_zip_select(
    records: list[Any],
    budget: int,
    k1: int = 10000,
    k2: int = 200,
    k3: int = 100,
    n_jobs: int = 1,
    tiebreak: Sequence[int] | None = None,
) -> list[int]:
    """Positions of the records the published program selects, in selection order.

    Exact ties break by ``tiebreak`` (a rank per record; by default the record's position).
    """
    rank = np.arange(len(records)) if tiebreak is None else np.asarray(tiebreak)
    with Pool(n_jobs) if n_jobs > 1 else _Serial() as workers:
        state = np.array(workers.map(_ratio, [[r] for r in records]), dtype=np.float64)
        available = np.ones(len(records), dtype=bool)
        chosen: list[int] = []
        while len(chosen) < budget and available.any():
            open_positions = np.flatnonzero(available)
            ranked = sorted(open_positions, key=lambda p: (state[p], rank[p]))[:k1]
            anchor = [records[p] for p in chosen]
            scores = workers.map(_ratio, [[*anchor, records[p]] for p in ranked])
            state[ranked] = scores
            group = [ranked[i] for i in _stable_smallest(scores, rank[ranked], k2)]
            available[group] = False
            picks: list[int] = []
            remaining = list(group)
            for _ in range(min(k3, budget - len(chosen), len(group))):
                picked = [records[p] for p in picks]
                scores3 = workers.map(_ratio, [[*picked, records[p]] for p in remaining])
                picks.append(remaining.pop(_stable_smallest(scores3, rank[remaining], 1)[0]))
            chosen.extend(picks)
    return chosen


class _Serial:
    """The subset of ``multiprocessing.Pool`` used above, run in this process."""

    def map(self, function: Any, items: Sequence[Any]) -> list[Any]:
        return [function(item) for item in items]

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
