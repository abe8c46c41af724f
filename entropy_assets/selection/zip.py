"""ZIP: the Entropy Law paper's multi-stage greedy selection by compression ratio.

Stage 1 ranks every sample by its own (or last known) ratio; stage 2 re-scores the K1 best against the chosen set
and keeps the K2 best; stage 3 picks K3 of those one at a time, each time the one that keeps the set's ratio
lowest. Rounds repeat until the budget is filled.

Two modes:

- ``paper`` reproduces the published program: zlib level 9 over Python ``str()`` of the list of whole records,
  stage 3 greedy within the round's group only, the group's unpicked candidates never reconsidered, the whole
  set's ratio as the score. It is fast because each candidate is measured on a copy of a zlib stream that holds
  the chosen set (sizes identical to full recompression) instead of recompressing the set.
- ``default`` measures canonical text (content only) with zstd whose window and tables cover the chosen set,
  scores stage 3 against the chosen set plus the round's most recent picks, returns the group's unpicked
  candidates to the pool, and re-scores lazily: a candidate's last measured size is an upper bound on its size
  against a larger context, so candidates whose bound cannot reach the round's best are not recompressed.

Either mode can save its state between rounds to a ``SelectionCheckpoint``: a run killed mid-way resumes from
its last saved round and makes exactly the selection of an uninterrupted run.

Either mode can start warm from an earlier selection (``WarmStart``): its samples still in the pool, unchanged, are
the chosen set's start (``round`` -1 in the provenance), and the rounds fill the freed budget. In default mode with
a budget in samples, a new sample then replaces a kept one where the swap lowers the set's ratio (one last round).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

from entropy_assets.compression import (
    SET_SEPARATOR,
    CompressionContext,
    Compressor,
    KnownSizes,
    ZlibCompressor,
    ZlibContext,
    ZstdCompressor,
    default_threads,
    make_compressor,
)
from entropy_assets.selection.base import (
    Budget,
    BudgetUnit,
    LazyTexts,
    Selection,
    pool_ids,
    pool_texts,
    provenance_frame,
    smallest,
    text_lengths,
    texts_at,
    tiebreak_order,
)
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.warm import WarmStart
from entropy_assets.versions import input_fingerprint

ZipMode = Literal["default", "paper"]
ZIP_MODES: tuple[str, ...] = ("default", "paper")

Progress = Callable[[int], None]
"""Called with the number of samples selected so far, after each round."""

_STAGE3_RECENT_BYTES = 4096
"""How many bytes of a round's latest picks stage 3 recompresses after the chosen set with each candidate."""

_LAZY_BATCH = 256
"""Candidates re-scored together in stage 2 before checking whether the rest can still make the group."""

_EXACT_CONTEXT_BYTES = 4 << 20
"""Up to this many chosen bytes, every round measures candidates against a context of the whole chosen set."""

_SWAP_BLOCKS = 4
"""A kept sample's worth is measured against the chosen set less the block (of this many) it is in: one context per
block instead of one per sample. Samples of its own block that repeat it are missed, so its worth is overstated a
little, and a swap is proposed a little too readily; the swap is kept only where the ratio improves."""

_CONTEXT_GROWTH = 0.125
"""Past ``_EXACT_CONTEXT_BYTES``, the whole-set context is rebuilt only once the set has grown by this fraction:
building it costs time in proportion to the set (1.5 s at 46 MB), which every round paying made selecting 50,000
samples take minutes. Between rebuilds, the samples chosen since are a second, small context (see
``_SplitContext``)."""


@dataclass(frozen=True)
class ZipConfig:
    """Settings of a ZIP run, validated at construction."""

    budget: int
    k1: int = 10000
    k2: int = 200
    k3: int = 100
    mode: ZipMode = "default"
    compressor: str = "zstd"
    level: int | None = None
    budget_unit: BudgetUnit = "samples"
    seed: int = 0
    n_jobs: int = 0
    """Threads for compression; 0 means every available core."""

    def __post_init__(self) -> None:
        for name in ("budget", "k1", "k2", "k3"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ZipConfig.{name} must be a positive integer, got {value!r}")
        if not self.k1 >= self.k2 >= self.k3:
            raise ValueError(f"ZipConfig needs k1 >= k2 >= k3, got k1={self.k1}, k2={self.k2}, k3={self.k3}")
        if self.mode not in ZIP_MODES:
            raise ValueError(f"ZipConfig.mode must be one of {', '.join(ZIP_MODES)}, got {self.mode!r}")
        if self.n_jobs < 0:
            raise ValueError(f"ZipConfig.n_jobs must be >= 0, got {self.n_jobs}")
        if self.mode == "paper" and (self.compressor != "zlib" or self.level not in (None, 9)):
            raise ValueError("ZipConfig.mode 'paper' uses zlib level 9; set compressor='zlib' and level=None or 9")
        if self.mode == "paper" and self.budget_unit != "samples":
            raise ValueError("ZipConfig.mode 'paper' counts its budget in samples")
        make_compressor(self.compressor, self.level)  # validates name and level
        Budget(self.budget, self.budget_unit)

    @classmethod
    def paper(cls, budget: int, **settings: object) -> ZipConfig:
        """The published program's semantics."""
        return cls(budget=budget, mode="paper", compressor="zlib", **settings)  # type: ignore[arg-type]

    @property
    def threads(self) -> int:
        return self.n_jobs or default_threads()


def zip_select(
    pool: pl.DataFrame,
    config: ZipConfig,
    progress: Progress | None = None,
    *,
    checkpoint: SelectionCheckpoint | None = None,
    warm: WarmStart | None = None,
    known: KnownSizes | None = None,
    texts: LazyTexts | None = None,
) -> Selection:
    """Select from ``pool`` (a pool frame with ``id``, ``text``, ``n_bytes`` and, for paper mode, ``record``; in
    default mode, ``texts`` may stand for its ``text``: the samples' bytes, read as the rounds need them).

    With ``checkpoint``, the state is saved between rounds and a run resumes from a saved state of the same inputs
    and settings; the selection is exactly the one an uninterrupted run makes. The caller removes the checkpoint.
    With ``warm``, the selection starts from an earlier one (see the module's docstring). ``known`` (each sample's
    size as ``compression_scores`` measured it) spares default mode's stage 1 compressing every sample again when
    it was measured with the same compressor settings: it gives the very sizes stage 1 would measure.
    """
    budget = Budget(config.budget, config.budget_unit)
    n_bytes = pool["n_bytes"].to_numpy()
    budget.check_fits(n_bytes)
    started = time.perf_counter()
    ids = pool_ids(pool)
    start = _Start(warm, pool, budget, n_bytes)
    if config.mode == "paper":
        records = [repr(json.loads(record)).encode("utf-8") for record in pool["record"].to_list()]
        saver = _Saver(checkpoint, ids, records, config, warm)
        rows = _paper_zip(records, config, progress, saver, start)
    else:
        # a lazy pool's samples are named in the checkpoint's fingerprint by their content, not read for it
        data = pool_texts(pool) if texts is None else texts
        identity = data if texts is None else (value.encode() for value in texts.identity)
        saver = _Saver(checkpoint, ids, identity, config, warm)
        rows = _default_zip(data, config, budget, progress, saver, start, known)
    provenance = _provenance(ids, rows)
    chosen = provenance["position"].to_numpy()
    rounds = [r for r in rows["round"] if r >= 0]
    summary: dict[str, object] = {
        "pool_size": pool.height,
        "selected": len(chosen),
        "selected_bytes": int(n_bytes[chosen].sum()),
        "rounds": max(rounds) + 1 if rounds else 0,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if warm is not None:
        kept = int(np.isin(chosen, start.kept).sum())
        summary["warm"] = {
            "kept": kept,
            "dropped": len(warm.ids) - len(start.kept),
            "new": len(start.new),
            "swapped": len(start.kept) - kept,
        }
    if checkpoint is not None:
        summary.update(
            resumed_from_round=checkpoint.resumed_from_round,
            checkpoint_saves=checkpoint.saves,
            checkpoint_seconds=round(checkpoint.save_seconds, 3),
        )
    return Selection(
        method="zip" if config.mode == "default" else "zip_paper",
        provenance=provenance,
        config=asdict(config),
        summary=summary,
    )


_ROW_KEYS = ("position", "round", "s1", "s2", "s3", "marginal", "ratio")
_ROW_TYPES = {"position": np.int64, "round": np.int64, "marginal": np.int64}
_KEPT = -1
"""The round of a sample kept from the earlier selection a warm start began with."""


class _Start:
    """Where a run begins: the positions kept from a warm start's earlier selection (in its order, within the
    budget), and the positions of the samples new since (which may replace kept ones)."""

    def __init__(self, warm: WarmStart | None, pool: pl.DataFrame, budget: Budget, n_bytes: np.ndarray) -> None:
        self.kept = np.array([], dtype=np.int64)
        self.new = np.array([], dtype=np.int64)
        if warm is not None:
            kept = warm.kept(pool)
            self.kept = budget.take_prefix(kept, n_bytes) if len(kept) else kept
            self.new = warm.new(pool)

    def rows(self) -> dict[str, list]:
        """The provenance rows of the kept samples: their scores are the earlier selection's, not this run's, so
        they are left empty."""
        n = len(self.kept)
        empty = {key: [float("nan")] * n for key in ("s1", "s2", "s3", "ratio")}  # a list each: rows grow
        return {"position": self.kept.tolist(), "round": [_KEPT] * n, "marginal": [0] * n, **empty}


def _provenance(ids: list[str], rows: dict[str, list]) -> pl.DataFrame:
    """The provenance table of a run's rows; a kept sample's scores of this run are null."""
    frame = provenance_frame(
        ids,
        rows["position"],
        round=rows["round"],
        stage1_score=rows["s1"],
        stage2_score=rows["s2"],
        stage3_score=rows["s3"],
        marginal_bytes=rows["marginal"],
        set_ratio_after=rows["ratio"],
    )
    kept = pl.col("round") == _KEPT
    columns = ("stage1_score", "stage2_score", "stage3_score", "marginal_bytes", "set_ratio_after")
    return frame.with_columns(pl.when(kept).then(None).otherwise(pl.col(name)).alias(name) for name in columns)


class _Saver:
    """Saves a run's state to its checkpoint (if any) and loads the state a killed run saved."""

    def __init__(
        self,
        checkpoint: SelectionCheckpoint | None,
        ids: list[str],
        data: Iterable[bytes],
        config: ZipConfig,
        warm: WarmStart | None,
    ):
        self.checkpoint = checkpoint
        # Threads change no size: a run resumed with another n_jobs continues the same selection.
        settings = {**asdict(config), "n_jobs": 0, **(warm.fingerprint() if warm is not None else {})}
        self.fingerprint = input_fingerprint(ids, data, settings) if checkpoint is not None else ""

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, list]] | None:
        """The saved arrays and provenance rows, or None to start afresh."""
        if self.checkpoint is None:
            return None
        state = self.checkpoint.load(self.fingerprint)
        if state is None:
            return None
        rows = {key: state.pop(f"row_{key}").tolist() for key in _ROW_KEYS}
        return state, rows

    def save(self, rows: dict[str, list], state: dict[str, np.ndarray | int | float], final: bool) -> None:
        """Save after a completed round when the checkpoint is due, and always after the last round."""
        if self.checkpoint is None or not (final or self.checkpoint.due()):
            return
        arrays = {f"row_{key}": np.asarray(rows[key], dtype=_ROW_TYPES.get(key, np.float64)) for key in _ROW_KEYS}
        self.checkpoint.save(self.fingerprint, {**arrays, **state})


# --- paper mode -------------------------------------------------------------------------------------------


def _paper_zip(
    records: list[bytes], config: ZipConfig, progress: Progress | None, saver: _Saver, start: _Start
) -> dict[str, list]:
    """The published semantics over ``repr`` of whole records, with incremental zlib-9 streams; the provenance
    rows. A warm start's kept samples open the stream."""
    n = len(records)
    threads = config.threads
    tiebreak = tiebreak_order(n, config.seed)
    zlib9 = ZlibCompressor(9)
    # The published program scores str([record]) alone, then str(chosen + [record]) against the chosen set.
    alone = zlib9.compressed_sizes([b"[" + r + b"]" for r in records], threads)
    state = np.array([len(r) + 2 for r in records], dtype=np.float64) / alone
    stage1 = state.copy()
    available = np.ones(n, dtype=bool)
    chosen_stream = ZlibContext(9, b"[")
    rows = start.rows()
    available[start.kept] = False
    round_index = 0
    saved = saver.load()
    if saved is not None:
        arrays, rows = saved
        round_index, state, available = int(arrays["rounds"]), arrays["state"], arrays["available"]
    for pick in rows["position"]:  # kept samples, or the same appends as the interrupted run made
        chosen_stream.extend(records[pick] + b", ")
    while len(rows["position"]) < config.budget:
        candidates = np.flatnonzero(available)
        if len(candidates) == 0:
            break
        candidates = candidates[smallest(state[candidates], tiebreak[candidates], config.k1)]
        closing = [records[c] + b"]" for c in candidates]
        joint = chosen_stream.joint_sizes(closing, threads)
        raw = chosen_stream.raw_size + np.array([len(t) for t in closing], dtype=np.float64)
        scores = raw / joint
        state[candidates] = scores
        keep = smallest(scores, tiebreak[candidates], config.k2)
        group, group_scores = candidates[keep], scores[keep]
        available[group] = False  # the published program never reconsiders a group's unpicked members

        wanted = min(config.k3, config.budget - len(rows["position"]), len(group))
        picks, pick_scores = _paper_stage3(records, group, wanted, tiebreak, threads)
        for pick, pick_score in zip(picks, pick_scores, strict=True):
            before = chosen_stream.joint_size(b"]")
            after = chosen_stream.joint_size(records[pick] + b"]")
            chosen_stream.extend(records[pick] + b", ")
            rows["position"].append(int(pick))
            rows["round"].append(round_index)
            rows["s1"].append(float(stage1[pick]))
            rows["s2"].append(float(group_scores[group == pick][0]))
            rows["s3"].append(pick_score)
            rows["marginal"].append(after - before)
            rows["ratio"].append((chosen_stream.raw_size - 1) / after)
        round_index += 1
        finished = len(rows["position"]) >= config.budget or not available.any()
        saver.save(rows, {"rounds": round_index, "state": state, "available": available}, finished)
        if progress:
            progress(len(rows["position"]))
    return rows


def _paper_stage3(
    records: list[bytes], group: np.ndarray, wanted: int, tiebreak: np.ndarray, threads: int
) -> tuple[list[int], list[float]]:
    """Greedy within the group alone: each pick minimizes the ratio of str(picks + [candidate])."""
    stream = ZlibContext(9, b"[")
    remaining = list(group)
    picks: list[int] = []
    pick_scores: list[float] = []
    for _ in range(wanted):
        closing = [records[c] + b"]" for c in remaining]
        joint = stream.joint_sizes(closing, threads)
        scores = (stream.raw_size + np.array([len(t) for t in closing], dtype=np.float64)) / joint
        best = int(smallest(scores, tiebreak[remaining], 1)[0])
        pick = int(remaining.pop(best))
        picks.append(pick)
        pick_scores.append(float(scores[best]))
        stream.extend(records[pick] + b", ")
    return picks, pick_scores


# --- default mode ---------------------------------------------------------------------------------------


def _default_zip(
    texts: Sequence[bytes],
    config: ZipConfig,
    budget: Budget,
    progress: Progress | None,
    saver: _Saver,
    start: _Start,
    known: KnownSizes | None = None,
) -> dict[str, list]:
    """ZIP over canonical text with a whole-set zstd window, stage 3 against chosen + picks, lazy re-scoring; the
    provenance rows. A warm start's kept samples are the chosen set's start, and new samples may replace them."""
    run = _DefaultZip(texts, config, known)
    round_index = 0
    saved = saver.load()
    if saved is not None:
        arrays, rows = saved
        run.restore(arrays, rows)
        round_index, selected_bytes = int(arrays["rounds"]), int(arrays["selected_bytes"])
    else:
        selected_bytes = run.start_from(start)

    def unfinished() -> bool:
        return budget.remaining(len(run.rows["position"]), selected_bytes) > 0 and bool(run.available.any())

    while unfinished():
        candidates = run.stage1(config.k1)
        context = run.context()
        # Only a cold run's first round has every size measured against its context (the empty one).
        fresh = round_index == 0 and not len(start.kept)
        group, group_scores = run.stage2(context, candidates, config.k2, fresh=fresh)
        for pick_bytes in run.stage3(context, group, group_scores, config.k3, round_index):
            selected_bytes += pick_bytes
            if budget.remaining(len(run.rows["position"]), selected_bytes) <= 0:
                break
        round_index += 1
        saver.save(run.rows, {**run.state(), "rounds": round_index, "selected_bytes": selected_bytes}, not unfinished())
        if progress:
            progress(len(run.rows["position"]))
    if len(start.new) and budget.unit == "samples":  # a swap keeps the count; a byte budget it could break
        run.swap_in(start.new, round_index)
    return run.rows


class _SplitContext(CompressionContext):
    """The chosen set as two contexts: all of it as of the last rebuild, and the samples chosen since. A candidate's
    size is the smaller of its sizes against the two, as stage 3 does with a round's picks: it catches a candidate
    redundant with either part, not one that draws on both."""

    def __init__(self, whole: CompressionContext, since: CompressionContext) -> None:
        self.raw_size = whole.raw_size + since.raw_size
        self._parts = (whole, since)

    def conditional_size(self, candidate: bytes) -> int:
        return min(part.conditional_size(candidate) for part in self._parts)

    def conditional_sizes(self, candidates: Sequence[bytes], threads: int = 1) -> np.ndarray:
        whole, since = (part.conditional_sizes(candidates, threads) for part in self._parts)
        return np.minimum(whole, since)

    def marginal_size(self, prefix: bytes, candidate: bytes) -> int:
        return min(part.marginal_size(prefix, candidate) for part in self._parts)

    def marginal_sizes(self, prefix: bytes, candidates: Sequence[bytes], threads: int = 1) -> np.ndarray:
        whole, since = (part.marginal_sizes(prefix, candidates, threads) for part in self._parts)
        return np.minimum(whole, since)


class _RoundPicks:
    """A round's stage-3 picks, as context for measuring the next candidate after the chosen set and them.

    Measuring after the chosen set plus all of a round's picks recompresses those picks every time (about 100
    samples by default, and past 16 KiB zstd must stream, several times slower). Instead a candidate is measured
    after the chosen set plus the round's recent picks (a few KiB, recompressed), and against all of the round's
    picks alone (a small dictionary, rebuilt each time the recent bytes fill up); the smaller size counts. The
    second catches a near-duplicate of any earlier pick of the round.
    """

    def __init__(self, context: CompressionContext, compressor: Compressor) -> None:
        self._context = context
        # The round's picks are a small context, rebuilt often: zstd's fastest level builds it in microseconds.
        self._compressor = ZstdCompressor(level=1) if isinstance(compressor, ZstdCompressor) else compressor
        self._all = bytearray()
        self._recent = b""
        self._earlier: CompressionContext | None = None

    def add(self, sample: bytes) -> None:
        self._all += sample
        self._recent += sample
        if len(self._recent) > _STAGE3_RECENT_BYTES:
            self._earlier = self._compressor.context(bytes(self._all))
            self._recent = self._recent[-_STAGE3_RECENT_BYTES // 4 :]

    def marginal_size(self, candidate: bytes) -> int:
        size = self._context.marginal_size(self._recent, candidate)
        if self._earlier is not None:
            size = min(size, self._earlier.conditional_size(candidate))
        return size

    def marginal_sizes(self, candidates: list[bytes], threads: int) -> np.ndarray:
        sizes = self._context.marginal_sizes(self._recent, candidates, threads)
        if self._earlier is not None:
            sizes = np.minimum(sizes, self._earlier.conditional_sizes(candidates, threads))
        return sizes


def _framed(texts: Sequence[bytes], positions: Sequence[int] | np.ndarray) -> list[bytes]:
    """The samples at ``positions`` as the chosen stream holds them: each followed by ``SET_SEPARATOR``."""
    return [text + SET_SEPARATOR for text in texts_at(texts, positions)]


class _DefaultZip:
    """The state of a default-mode run: every sample's last measured marginal size, and the chosen set.

    A sample's marginal size is the compressed bytes it adds after the chosen set. Measured against a smaller
    context it bounds the size against a larger one, which lets stages 2 and 3 skip candidates that cannot win.
    """

    def __init__(self, texts: Sequence[bytes], config: ZipConfig, known: KnownSizes | None = None) -> None:
        self.texts = texts
        self.known = known
        self.threads = config.threads
        self.compressor = make_compressor(config.compressor, config.level)
        self.tiebreak = tiebreak_order(len(texts), config.seed)
        self.sample_bytes = text_lengths(texts)
        self.raw = (self.sample_bytes + len(SET_SEPARATOR)).astype(np.float64)
        self._marginal: np.ndarray | None = None
        self._stage1_ratio: np.ndarray | None = None
        self.available = np.ones(len(texts), dtype=bool)
        self.chosen_stream = bytearray()
        self.set_raw = 0.0
        self.set_compressed = 0.0
        self.rows: dict[str, list] = {key: [] for key in _ROW_KEYS}
        self._whole: CompressionContext | None = None
        self._whole_bytes = 0

    def _measure_alone(self) -> None:
        """Every sample's size against an empty context, once, when a round first needs it (a warm start with no
        budget to fill needs none). A frame's fixed overhead is left out, so that short samples are not ranked
        informative for the overhead alone."""
        sizes = np.maximum(
            self.compressor.alone_sizes(self.texts, self.threads, self.known, lengths=self.sample_bytes), 1
        )
        self._stage1_ratio = self.raw / sizes
        if self._marginal is None:
            self._marginal = sizes.astype(np.float64)

    @property
    def marginal(self) -> np.ndarray:
        """Every sample's last measured marginal size."""
        if self._marginal is None:
            self._measure_alone()
        assert self._marginal is not None
        return self._marginal

    @property
    def stage1_ratio(self) -> np.ndarray:
        """Every sample's ratio alone: the stage-1 score recorded in the provenance."""
        if self._stage1_ratio is None:
            self._measure_alone()
        assert self._stage1_ratio is not None
        return self._stage1_ratio

    def start_from(self, start: _Start) -> int:
        """Begin with a warm start's kept samples as the chosen set; returns their bytes."""
        if not len(start.kept):
            return 0
        self.rows = start.rows()
        self.available[start.kept] = False
        self.chosen_stream = bytearray(b"".join(_framed(self.texts, start.kept)))
        self.set_raw = float(self.raw[start.kept].sum())
        self.set_compressed = float(max(self.compressor.alone_sizes([bytes(self.chosen_stream)])[0], 1))
        return int(self.sample_bytes[start.kept].sum())

    def swap_in(self, new: np.ndarray, round_index: int) -> int:
        """Let new samples replace chosen ones, one for one, wherever the swap lowers the set's ratio; returns how
        many were swapped. A new sample's gain is what it adds after the whole set; a chosen sample's cost is what
        it adds after the set less its block (see ``_SWAP_BLOCKS``). Pairs go best first: the new sample that adds
        most per byte against the chosen one that adds least, while the ratio still falls."""
        incoming = new[self.available[new]]
        chosen = np.asarray(self.rows["position"], dtype=np.int64)
        if not len(incoming) or not len(chosen):
            return 0
        stream = bytes(self.chosen_stream)
        whole = self.compressor.context(stream)
        adds = np.maximum(whole.conditional_sizes(_framed(self.texts, incoming), self.threads), 1)
        ends = np.cumsum(self.raw[chosen].astype(np.int64))
        worth = np.empty(len(chosen), dtype=np.float64)
        for block in np.array_split(np.arange(len(chosen)), min(_SWAP_BLOCKS, len(chosen))):
            begin, end = int(ends[block[0]] - self.raw[chosen[block[0]]]), int(ends[block[-1]])
            others = self.compressor.context(stream[:begin] + stream[end:])
            sizes = others.conditional_sizes(_framed(self.texts, chosen[block]), self.threads)
            worth[block] = np.maximum(sizes, 1)
        ins = incoming[np.lexsort((self.tiebreak[incoming], self.raw[incoming] / adds))]
        gain = dict(zip(incoming.tolist(), adds.tolist(), strict=True))
        outs = np.lexsort((self.tiebreak[chosen], -(self.raw[chosen] / worth)))
        swaps: list[tuple[int, int]] = []
        for incoming_sample, out in zip(ins.tolist(), outs.tolist(), strict=False):
            raw = self.set_raw - self.raw[chosen[out]] + self.raw[incoming_sample]
            compressed = self.set_compressed - worth[out] + gain[incoming_sample]
            if raw / compressed >= self.set_raw / self.set_compressed:
                break
            self.set_raw, self.set_compressed = raw, compressed
            swaps.append((out, incoming_sample))
        if not swaps:
            return 0
        leaving = {out for out, _ in swaps}
        self.rows = {key: [v for i, v in enumerate(values) if i not in leaving] for key, values in self.rows.items()}
        arriving = [incoming_sample for _, incoming_sample in swaps]
        alone = self.compressor.alone_sizes(texts_at(self.texts, arriving), self.threads)
        for (out, incoming_sample), size in zip(swaps, alone.tolist(), strict=True):
            self.available[chosen[out]] = True
            self.available[incoming_sample] = False
            stage1 = float(self.raw[incoming_sample] / max(size, 1))
            self._record(incoming_sample, round_index, float("nan"), int(gain[incoming_sample]), stage1)
        self.chosen_stream = bytearray(b"".join(_framed(self.texts, self.rows["position"])))
        return len(swaps)

    def state(self) -> dict[str, np.ndarray | int | float]:
        """What a resumed run needs besides the provenance rows: everything a later round reads."""
        return {
            "marginal": self.marginal,
            "available": self.available,
            "set_raw": self.set_raw,
            "set_compressed": self.set_compressed,
            "whole_bytes": self._whole_bytes,
        }

    def restore(self, state: dict[str, np.ndarray], rows: dict[str, list]) -> None:
        """Continue from a saved ``state`` and its ``rows``; the contexts are rebuilt from the chosen samples."""
        self.rows = rows
        self._marginal = state["marginal"].astype(np.float64)
        self.available = state["available"].astype(bool)
        self.set_raw, self.set_compressed = float(state["set_raw"]), float(state["set_compressed"])
        self.chosen_stream = bytearray(b"".join(_framed(self.texts, rows["position"])))
        self._whole_bytes = int(state["whole_bytes"])
        self._whole = self.compressor.context(bytes(self.chosen_stream[: self._whole_bytes]))

    def context(self) -> CompressionContext:
        """The chosen set as this round's context: whole while it is small or has outgrown the last rebuild by
        ``_CONTEXT_GROWTH``, else the last whole-set context beside one of the samples chosen since."""
        size = len(self.chosen_stream)
        if self._whole is None or size <= _EXACT_CONTEXT_BYTES or size > self._whole_bytes * (1 + _CONTEXT_GROWTH):
            self._whole = self.compressor.context(bytes(self.chosen_stream))
            self._whole_bytes = size
        if size == self._whole_bytes:
            return self._whole
        return _SplitContext(self._whole, self.compressor.context(bytes(self.chosen_stream[self._whole_bytes :])))

    def set_scores(self, samples: np.ndarray) -> np.ndarray:
        """The chosen set's ratio after adding each sample, by its last measured marginal size."""
        return (self.set_raw + self.raw[samples]) / (self.set_compressed + self.marginal[samples])

    def stage1(self, k1: int) -> np.ndarray:
        """The K1 available samples with the lowest conditional ratio as last measured."""
        open_samples = np.flatnonzero(self.available)
        ratios = self.raw[open_samples] / self.marginal[open_samples]
        return open_samples[smallest(ratios, self.tiebreak[open_samples], k1)]

    def stage2(
        self, context: CompressionContext, candidates: np.ndarray, k2: int, fresh: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The K2 candidates that keep the set ratio lowest, re-measured against the chosen set.

        Candidates are measured in order of their bound until no unmeasured one can enter the K2 best; ``fresh``
        says every marginal size is already measured against this context.
        """
        bound = self.set_scores(candidates)
        order = np.lexsort((self.tiebreak[candidates], bound))
        if not fresh:
            measured = 0
            while measured < len(order):
                batch = candidates[order[measured : measured + max(_LAZY_BATCH, k2 - measured)]]
                sizes = context.conditional_sizes(texts_at(self.texts, batch), self.threads)
                self.marginal[batch] = np.maximum(sizes, 1)
                measured += len(batch)
                if k2 <= measured < len(order):
                    threshold = np.partition(self.set_scores(candidates[order[:measured]]), k2 - 1)[k2 - 1]
                    if bound[order[measured]] > threshold:
                        break
            candidates = candidates[order[:measured]]
        scores = self.set_scores(candidates)
        keep = smallest(scores, self.tiebreak[candidates], k2)
        return candidates[keep], scores[keep]

    def stage3(
        self,
        context: CompressionContext,
        group: np.ndarray,
        group_scores: np.ndarray,
        k3: int,
        round_index: int,
    ) -> Iterator[int]:
        """Pick up to K3 of the group one at a time, each keeping the set ratio lowest against the chosen set
        plus this round's picks; yields each pick's bytes (stop iterating to stop picking).

        Sizes measured inside the round's stream stay in this stage: unpicked members return to the pool with
        their stage-2 sizes, which later rounds' stage 2 compares like with like.
        """
        picks = _RoundPicks(context, self.compressor)
        sizes = self.marginal[group].copy()
        fresh = np.ones(len(group), dtype=bool)  # measured against the chosen set plus the picks so far
        remaining = np.ones(len(group), dtype=bool)
        for step in range(min(k3, len(group))):
            best = self._lazy_pick(picks, group, sizes, remaining, fresh)
            pick = int(group[best])
            picks.add(self.texts[pick] + SET_SEPARATOR)
            remaining[best] = False
            self.available[pick] = False
            self.chosen_stream += self.texts[pick] + SET_SEPARATOR
            self.set_raw += self.raw[pick]
            self.set_compressed += sizes[best]
            self._record(pick, round_index, float(group_scores[best]), int(sizes[best]))
            fresh[:] = False
            yield int(self.sample_bytes[pick])
            if step == 0 and remaining.any():
                # Sizes measured as frames of their own carry the frame's entropy tables, which a sample inside a
                # stream shares: re-measure the group once inside the stream, so that the bounds are tight.
                members = np.flatnonzero(remaining)
                measured = picks.marginal_sizes(_framed(self.texts, group[members]), self.threads)
                sizes[members] = np.maximum(measured, 1)
                fresh[members] = True

    def _lazy_pick(
        self, picks: _RoundPicks, group: np.ndarray, sizes: np.ndarray, remaining: np.ndarray, fresh: np.ndarray
    ) -> int:
        """The index in ``group`` of the member whose addition after this round's picks keeps the set ratio
        lowest, measuring only while a bound could win. ``sizes`` holds the members' last measured sizes.
        """
        members = np.flatnonzero(remaining)
        raw = self.raw[group[members]]
        scores = ((self.set_raw + raw) / (self.set_compressed + sizes[members])).tolist()
        queue = list(zip(scores, self.tiebreak[group[members]].tolist(), range(len(members)), strict=True))
        heapq.heapify(queue)
        while True:
            _, tiebreak, best = queue[0]
            member = int(members[best])
            if fresh[member]:
                return member
            size = picks.marginal_size(self.texts[group[member]] + SET_SEPARATOR)
            sizes[member] = max(min(size, sizes[member]), 1)
            fresh[member] = True
            score = (self.set_raw + raw[best]) / (self.set_compressed + sizes[member])
            heapq.heapreplace(queue, (float(score), tiebreak, best))

    def _record(
        self, pick: int, round_index: int, stage2_score: float, extra: int, stage1_score: float | None = None
    ) -> None:
        ratio = self.set_raw / self.set_compressed
        for key, value in (
            ("position", pick),
            ("round", round_index),
            ("s1", float(self.stage1_ratio[pick]) if stage1_score is None else stage1_score),
            ("s2", stage2_score),
            ("s3", ratio),
            ("marginal", extra),
            ("ratio", ratio),
        ):
            self.rows[key].append(value)
