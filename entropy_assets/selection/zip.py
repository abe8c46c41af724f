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
  scores stage 3 against the chosen set plus the round's picks, returns the group's unpicked candidates to the
  pool, and re-scores lazily: a candidate's last measured size is an upper bound on its size against a larger
  context, so candidates whose bound cannot reach the round's best are not recompressed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

from entropy_assets.compression import (
    SET_SEPARATOR,
    CompressionContext,
    ZlibCompressor,
    ZlibContext,
    default_threads,
    make_compressor,
)
from entropy_assets.selection.base import (
    Budget,
    BudgetUnit,
    Selection,
    pool_ids,
    pool_texts,
    provenance_frame,
    smallest,
    tiebreak_order,
)

ZipMode = Literal["default", "paper"]
ZIP_MODES: tuple[str, ...] = ("default", "paper")

Progress = Callable[[int], None]
"""Called with the number of samples selected so far, after each round."""

_LAZY_BATCH = 256
"""Candidates re-scored together in stage 2 before checking whether the rest can still make the group."""


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


def zip_select(pool: pl.DataFrame, config: ZipConfig, progress: Progress | None = None) -> Selection:
    """Select from ``pool`` (a pool frame with ``id``, ``text``, ``n_bytes`` and, for paper mode, ``record``)."""
    budget = Budget(config.budget, config.budget_unit)
    n_bytes = pool["n_bytes"].to_numpy()
    budget.check_fits(n_bytes)
    started = time.perf_counter()
    if config.mode == "paper":
        records = [repr(json.loads(record)).encode("utf-8") for record in pool["record"].to_list()]
        provenance = _paper_zip(records, pool_ids(pool), config, progress)
    else:
        provenance = _default_zip(pool_texts(pool), pool_ids(pool), config, budget, progress)
    chosen = provenance["position"].to_numpy()
    return Selection(
        method="zip" if config.mode == "default" else "zip_paper",
        provenance=provenance,
        config=asdict(config),
        summary={
            "pool_size": pool.height,
            "selected": len(chosen),
            "selected_bytes": int(n_bytes[chosen].sum()),
            "rounds": int(provenance["round"].max() or 0) + 1 if len(chosen) else 0,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


# --- paper mode -------------------------------------------------------------------------------------------


def _paper_zip(records: list[bytes], ids: list[str], config: ZipConfig, progress: Progress | None) -> pl.DataFrame:
    """The published semantics over ``repr`` of whole records, with incremental zlib-9 streams."""
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
    rows: dict[str, list] = {key: [] for key in ("position", "round", "s1", "s2", "s3", "marginal", "ratio")}
    round_index = 0
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
        if progress:
            progress(len(rows["position"]))
    return provenance_frame(
        ids,
        rows["position"],
        round=rows["round"],
        stage1_score=rows["s1"],
        stage2_score=rows["s2"],
        stage3_score=rows["s3"],
        marginal_bytes=rows["marginal"],
        set_ratio_after=rows["ratio"],
    )


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


# --- default mode -----------------------------------------------------------------------------------------


def _default_zip(
    texts: list[bytes], ids: list[str], config: ZipConfig, budget: Budget, progress: Progress | None
) -> pl.DataFrame:
    """ZIP over canonical text with a whole-set zstd window, stage 3 against chosen + picks, lazy re-scoring."""
    n = len(texts)
    threads = config.threads
    compressor = make_compressor(config.compressor, config.level)
    tiebreak = tiebreak_order(n, config.seed)
    raw = np.array([len(t) + len(SET_SEPARATOR) for t in texts], dtype=np.float64)
    sample_bytes = np.array([len(t) for t in texts], dtype=np.int64)
    # Marginal sizes against an empty context: a frame's fixed overhead is left out, so short samples are not
    # ranked informative for the overhead alone.
    marginal = np.maximum(compressor.context(b"").conditional_sizes(texts, threads), 1).astype(np.float64)
    stage1 = raw / marginal
    available = np.ones(n, dtype=bool)
    chosen_stream = bytearray()
    set_raw = 0.0
    set_compressed = 0.0
    rows: dict[str, list] = {key: [] for key in ("position", "round", "s1", "s2", "s3", "marginal", "ratio")}
    selected_bytes = 0
    round_index = 0
    while budget.remaining(len(rows["position"]), selected_bytes) > 0:
        candidates = np.flatnonzero(available)
        if len(candidates) == 0:
            break
        # Stage 1: the K1 lowest conditional ratios as last measured.
        candidates = candidates[smallest(raw[candidates] / marginal[candidates], tiebreak[candidates], config.k1)]
        context = compressor.context(bytes(chosen_stream))
        # Stage 2: the K2 lowest set ratios after adding each candidate, re-scored against the chosen set.
        group, group_scores = _lazy_stage2(
            context,
            texts,
            candidates,
            raw,
            marginal,
            set_raw,
            set_compressed,
            config.k2,
            tiebreak,
            threads,
            fresh_already=round_index == 0,
        )
        # Stage 3: one at a time against the chosen set plus this round's picks.
        picked = 0
        picks_stream = bytearray()
        picks_size = 0
        fresh = np.ones(len(group), dtype=bool)
        remaining = np.ones(len(group), dtype=bool)
        while picked < config.k3 and remaining.any():
            if budget.remaining(len(rows["position"]), selected_bytes) <= 0:
                break
            best, picks_size = _lazy_pick(
                context,
                texts,
                group,
                remaining,
                fresh,
                marginal,
                raw,
                set_raw,
                set_compressed,
                picks_stream,
                picks_size,
                tiebreak,
            )
            pick = int(group[best])
            extra = marginal[pick]
            picks_stream += texts[pick] + SET_SEPARATOR
            set_raw += raw[pick]
            set_compressed += extra
            remaining[best] = False
            fresh[:] = False
            available[pick] = False
            selected_bytes += int(sample_bytes[pick])
            picked += 1
            rows["position"].append(pick)
            rows["round"].append(round_index)
            rows["s1"].append(float(stage1[pick]))
            rows["s2"].append(float(group_scores[best]))
            rows["s3"].append(set_raw / set_compressed)
            rows["marginal"].append(int(extra))
            rows["ratio"].append(set_raw / set_compressed)
        chosen_stream += picks_stream
        round_index += 1
        if progress:
            progress(len(rows["position"]))
    return provenance_frame(
        ids,
        rows["position"],
        round=rows["round"],
        stage1_score=rows["s1"],
        stage2_score=rows["s2"],
        stage3_score=rows["s3"],
        marginal_bytes=rows["marginal"],
        set_ratio_after=rows["ratio"],
    )


def _lazy_stage2(
    context: CompressionContext,
    texts: list[bytes],
    candidates: np.ndarray,
    raw: np.ndarray,
    marginal: np.ndarray,
    set_raw: float,
    set_compressed: float,
    k2: int,
    tiebreak: np.ndarray,
    threads: int,
    fresh_already: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidates in order of their bound until no unscored one can enter the K2 best.

    Updates ``marginal`` in place for every candidate re-scored. Returns the group and its set-ratio scores.
    """
    bound = (set_raw + raw[candidates]) / (set_compressed + marginal[candidates])
    order = np.lexsort((tiebreak[candidates], bound))
    if not fresh_already:
        scored = 0
        while scored < len(order):
            batch = candidates[order[scored : scored + max(_LAZY_BATCH, k2 - scored)]]
            marginal[batch] = np.maximum(context.conditional_sizes([texts[c] for c in batch], threads), 1)
            scored += len(batch)
            if scored >= k2 and scored < len(order):
                done = candidates[order[:scored]]
                fresh_scores = (set_raw + raw[done]) / (set_compressed + marginal[done])
                threshold = np.partition(fresh_scores, k2 - 1)[k2 - 1]
                if bound[order[scored]] > threshold:
                    break
        candidates = candidates[order[:scored]]
    scores = (set_raw + raw[candidates]) / (set_compressed + marginal[candidates])
    keep = smallest(scores, tiebreak[candidates], k2)
    return candidates[keep], scores[keep]


def _lazy_pick(
    context: CompressionContext,
    texts: list[bytes],
    group: np.ndarray,
    remaining: np.ndarray,
    fresh: np.ndarray,
    marginal: np.ndarray,
    raw: np.ndarray,
    set_raw: float,
    set_compressed: float,
    picks_stream: bytearray,
    picks_size: int,
    tiebreak: np.ndarray,
) -> tuple[int, int]:
    """The group member whose addition keeps the set ratio lowest, measuring only while a bound could win.

    Measurements run on one thread: they walk the large context's match tables, and two threads doing so
    were slower here than one. Returns the member's index in ``group`` and the compressed size of this round's
    picks with it added.
    """
    members = np.flatnonzero(remaining)
    prefix = bytes(picks_stream)
    joint = {int(i): picks_size + int(marginal[group[i]]) for i in members if fresh[i]}
    while True:
        scores = (set_raw + raw[group[members]]) / (set_compressed + marginal[group[members]])
        best = int(members[smallest(scores, tiebreak[group[members]], 1)[0]])
        if fresh[best]:
            return best, joint[best]
        candidate = group[best]
        joint[best] = context.conditional_size(prefix + texts[candidate] + SET_SEPARATOR)
        marginal[candidate] = max(min(joint[best] - picks_size, marginal[candidate]), 1)
        fresh[best] = True
