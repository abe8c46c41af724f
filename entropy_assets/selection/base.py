"""What every selection method shares: budgets, the result with per-sample provenance, and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import polars as pl

BudgetUnit = Literal["samples", "bytes"]
BUDGET_UNITS: tuple[str, ...] = ("samples", "bytes")

PROVENANCE_SCHEMA: dict[str, pl.DataType] = {
    "position": pl.Int64(),
    "id": pl.String(),
    "rank": pl.Int64(),
    "round": pl.Int64(),
    "stage1_score": pl.Float64(),
    "stage2_score": pl.Float64(),
    "stage3_score": pl.Float64(),
    "marginal_bytes": pl.Int64(),
    "set_ratio_after": pl.Float64(),
}
"""One row per selected sample, in the order chosen. ``position`` is the row in the pool; scores a method
does not compute are null."""

PROVENANCE_DESCRIPTIONS: dict[str, str] = {
    "position": "the sample's row in the pool",
    "id": "the sample's id in the pool",
    "rank": "the order in which it was chosen (0 first)",
    "round": "the selection round that chose it (ZIP); -1 for a sample kept from the previous version",
    "stage1_score": "ZIP: its own compression ratio; ratio baseline: the ratio it was ranked by",
    "stage2_score": "ZIP: the chosen set's ratio with it added, as stage 2 estimated it",
    "stage3_score": "ZIP: the ratio of the chosen set with it added",
    "marginal_bytes": "ZIP: the compressed bytes it added to the chosen set",
    "set_ratio_after": "ZIP: the chosen set's compression ratio after it was added",
}
"""What each provenance column holds, for the column schema a subset's metadata shows."""


@dataclass(frozen=True)
class Budget:
    """How much to select: a number of samples, or of canonical-text bytes."""

    amount: int
    unit: BudgetUnit = "samples"

    def __post_init__(self) -> None:
        if self.unit not in BUDGET_UNITS:
            raise ValueError(f"budget unit must be one of {', '.join(BUDGET_UNITS)}, got {self.unit!r}")
        if self.amount <= 0:
            raise ValueError(f"budget must be positive, got {self.amount}")

    def check_fits(self, n_bytes: np.ndarray) -> None:
        """Raise before any work when the pool cannot fill the budget."""
        available = len(n_bytes) if self.unit == "samples" else int(n_bytes.sum())
        if self.amount > available:
            raise ValueError(f"budget of {self.amount} {self.unit} is larger than the pool ({available} {self.unit})")

    def used(self, count: int, total_bytes: int) -> int:
        """The budget consumed by ``count`` samples of ``total_bytes`` bytes."""
        return count if self.unit == "samples" else total_bytes

    def remaining(self, count: int, total_bytes: int) -> int:
        """What is left of the budget."""
        return self.amount - self.used(count, total_bytes)

    def take_prefix(self, order: np.ndarray, n_bytes: np.ndarray) -> np.ndarray:
        """The shortest prefix of ``order`` that fills the budget (the last sample may cross a byte budget)."""
        if self.unit == "samples":
            return order[: self.amount]
        cumulative = np.cumsum(n_bytes[order])
        return order[: int(np.searchsorted(cumulative, self.amount)) + 1]


@dataclass
class Selection:
    """A chosen subset of a pool: positions in selection order, with provenance and a summary."""

    method: str
    provenance: pl.DataFrame
    config: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def positions(self) -> np.ndarray:
        """Rows of the pool, in the order chosen."""
        return self.provenance["position"].to_numpy()

    def __len__(self) -> int:
        return self.provenance.height

    def subset(self, pool: pl.DataFrame) -> pl.DataFrame:
        """The selected rows of ``pool``, in the order chosen."""
        return pool[self.positions]


def provenance_frame(
    ids: Sequence[str] | pl.Series, positions: Sequence[int], **columns: Sequence[Any] | None
) -> pl.DataFrame:
    """Build the provenance table (``ids``: the pool's, a column or a list; ``positions``: the chosen ones');
    columns left out are null."""
    n = len(positions)
    data: dict[str, Any] = {
        "position": list(positions),
        "id": ids.gather(list(positions)) if isinstance(ids, pl.Series) else [ids[p] for p in positions],
        "rank": list(range(n)),
    }
    for name in PROVENANCE_SCHEMA:
        if name not in data:
            values = columns.get(name)
            data[name] = list(values) if values is not None else [None] * n
    return pl.DataFrame(data, schema=PROVENANCE_SCHEMA)


def tiebreak_order(n: int, seed: int) -> np.ndarray:
    """A seeded rank per sample that breaks exact score ties deterministically."""
    return np.random.default_rng(seed).permutation(n)


def smallest(scores: np.ndarray, tiebreak: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest scores, ascending, exact ties broken by ``tiebreak``."""
    if k == 1 and len(scores):
        best = int(scores.argmin())
        if np.count_nonzero(scores == scores[best]) > 1:
            tied = np.flatnonzero(scores == scores[best])
            best = int(tied[np.argmin(tiebreak[tied])])
        return np.array([best])
    if k < len(scores) // 4:  # partition first: the full sort of a large pool costs more than the rest
        kth = np.partition(scores, k - 1)[k - 1]
        below = np.flatnonzero(scores < kth)
        at = np.flatnonzero(scores == kth)
        at = at[np.argsort(tiebreak[at], kind="stable")][: k - len(below)]
        chosen = np.concatenate([below, at])
        return chosen[np.lexsort((tiebreak[chosen], scores[chosen]))]
    return np.lexsort((tiebreak, scores))[:k]


def pool_texts(pool: pl.DataFrame) -> list[bytes]:
    """The canonical bytes of every sample of a pool frame, computed once."""
    return [text.encode("utf-8") for text in pool["text"].to_list()]


def pool_ids(pool: pl.DataFrame) -> list[str]:
    """The ids of a pool frame."""
    return pool["id"].to_list()


class LazyTexts(Sequence[bytes]):
    """The canonical bytes of a pool's samples, read when a method first asks for them: ZIP over a pool of light
    columns reads the text of its candidates, not of the pool. Each sample's length is known from the start
    (``lengths``: the pool's ``n_bytes``), and ``identity`` (its content hashes) stands for its bytes in a checkpoint's
    fingerprint.

    A read asks ``fetch(positions)`` for the bytes of the samples at ``positions`` (a scan of the stored pool) and
    brings in, beside the samples asked for, the next ones in ``priority`` order not read yet (stage 1's ranking:
    the candidates of later rounds), twice as many each time, so that a run reads the pool a few times, not once a
    round. What was read is kept."""

    def __init__(
        self,
        lengths: np.ndarray,
        identity: Iterable[str],
        fetch: Callable[[np.ndarray], list[bytes]],
        priority: np.ndarray,
        first_read: int,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.identity = identity
        self._fetch = fetch
        self._priority = priority
        self._next = 0
        self._ahead = max(first_read, 1)
        self._read: dict[int, bytes] = {}
        self.reads = 0
        """How many times the pool was scanned."""

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def held(self) -> int:
        """How many samples' bytes were read."""
        return len(self._read)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return self.at(np.arange(len(self))[index])
        position = int(index)
        if position not in self._read:
            self._bring([position])
        return self._read[position]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.at(np.arange(len(self))))

    def at(self, positions: Sequence[int] | np.ndarray) -> list[bytes]:
        """The bytes of the samples at ``positions``, the missing ones read at once."""
        missing = [int(p) for p in positions if int(p) not in self._read]
        if missing:
            self._bring(missing)
        return [self._read[int(p)] for p in positions]

    def _bring(self, wanted: list[int]) -> None:
        ahead: list[int] = []
        while len(ahead) < self._ahead and self._next < len(self._priority):
            candidate = int(self._priority[self._next])
            self._next += 1
            if candidate not in self._read:
                ahead.append(candidate)
        self._ahead *= 2
        positions = np.unique(np.asarray(wanted + ahead, dtype=np.int64))
        self._read.update(zip(positions.tolist(), self._fetch(positions), strict=True))
        self.reads += 1


def texts_at(texts: Sequence[bytes], positions: Sequence[int] | np.ndarray) -> list[bytes]:
    """The bytes of the samples at ``positions`` (read at once where ``texts`` is lazy)."""
    if isinstance(texts, LazyTexts):
        return texts.at(positions)
    return [texts[int(p)] for p in positions]


def text_lengths(texts: Sequence[bytes]) -> np.ndarray:
    """Every sample's length in bytes, without reading a lazy one's text."""
    if isinstance(texts, LazyTexts):
        return texts.lengths
    return np.array([len(t) for t in texts], dtype=np.int64)


@dataclass(frozen=True)
class PoolAccess:
    """What a method reads of a pool beyond a frame of its light columns: every sample's near-duplicate keys, a band
    at a time (``near_dedup``), and the text of the samples it asks for (ZIP's candidates)."""

    bands: Callable[[int, np.ndarray], np.ndarray] | None = None
    """``bands(b, positions)``: the keys in band ``b`` of the samples at ``positions`` (``baselines.Bands``)."""
    texts: LazyTexts | None = None

    def rows(self, rows: np.ndarray) -> PoolAccess:
        """The access of the samples at ``rows`` (a stratum): their band keys; a stratum's text is not lazy."""
        bands = self.bands
        return PoolAccess(bands=(lambda band, at: bands(band, rows[at])) if bands is not None else None)
