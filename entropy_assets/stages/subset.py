"""Pool and scores to a selected subset: one method at one budget, with per-sample provenance, the subset in its
records' own form, a histogram of per-sample ratios, and its churn against the partition's previous version.

A refresh starts warm from the previous version when it was made with the same configuration (``reselect:
warm``, the default): its samples still in the pool, unchanged, are kept, and the method fills the freed budget
and lets new samples in (``selection.warm``). ``full_every: N`` makes every N-th refresh a full re-selection, and
records then how far the warm one would have drifted. A subset's version is the content it holds, so a refresh
that lands on the same samples makes the same version and nothing downstream runs again. The whole selection is
computed before anything is written: a failure leaves earlier files as they were. A ZIP selection saves its rounds
to a checkpoint beside the subset, named by what the selection starts from, so that a rerun after a kill resumes
(and logs ``resumed from round N``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from entropy_assets.composition import FacetMix, composition, facet_frame
from entropy_assets.diversity import ngram_diversity
from entropy_assets.entropy_law import law_ratio
from entropy_assets.plots import ratio_histogram_png
from entropy_assets.selection import methods
from entropy_assets.selection.base import Selection
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.methods import SelectionConfig
from entropy_assets.selection.warm import WarmStart
from entropy_assets.storage import Storage
from entropy_assets.versions import selection_key, subset_version

from .churn import churn
from .holdout import holdout_mask
from .results import PoolResult, ScoresResult, SubsetResult
from .scores import ScoringSettings, gather_scores
from .workspace import Workspace

CHECKPOINT_SECONDS = 2.0
"""A ZIP subset saves its checkpoint after a completed round once this many seconds have passed since the last
save: a kill loses at most this much work, and the saves cost no measurable time (every round: +13% on Alpaca
52K, ``benchmarks/selection_resume.py``)."""

Reselect = Literal["warm", "full"]


@dataclass(frozen=True)
class SubsetSettings:
    """One subset: a method at a budget, its validated configuration, the evaluation samples held out of selection,
    the form its records are exported in, and how a refresh re-selects it."""

    method: str
    budget: int
    config: SelectionConfig
    holdout: int = 0
    export_suffix: str = ".jsonl"
    reselect: Reselect = "warm"
    """``warm``: a refresh starts from the previous version (when made with the same configuration); ``full``:
    every refresh selects from scratch."""
    full_every: int | None = None
    """With ``warm``: every this many refreshes, a full re-selection (and the drift of the warm one recorded)."""

    @property
    def folder(self) -> str:
        """The storage folder of this subset's versions, and of its training runs': ``<method>_<budget>``."""
        return f"{self.method}_{self.budget}"


@dataclass(frozen=True)
class _Previous:
    """The partition's previous version, as far as its files can still be read: its samples (``id``,
    ``content_hash``, ``rank``) and the content hashes of the pool it was chosen from."""

    result: SubsetResult
    subset: pl.DataFrame
    pool: pl.DataFrame

    def warm_start(self) -> WarmStart:
        return WarmStart.from_provenance(self.subset, set(self.pool["content_hash"].to_list()))


def select_subset(
    workspace: Workspace,
    pool: PoolResult,
    scores: ScoresResult | Mapping[str, ScoresResult | None] | None,
    subset: SubsetSettings,
    scoring: ScoringSettings,
    previous: SubsetResult | None = None,
) -> SubsetResult:
    """Select ``subset`` from ``pool`` (its latest ``scores``, or every shard's) and store it: provenance (parquet),
    the records in their own form, and the histogram; evaluation samples are never offered. ``previous`` (the
    partition's previous version) is where a warm refresh starts, and what the churn is measured against."""
    storage = workspace.storage
    pool_frame = storage.read_parquet(pool.file)
    gathered = gather_scores(workspace, pool, pool_frame, scoring, scores)
    offered = ~holdout_mask(pool_frame, subset.holdout)
    frame, ratios = pool_frame.filter(offered), gathered.frame.filter(offered)["ratio"].to_numpy()
    config = methods.describe_config(subset.config)
    earlier = _previous(storage, previous, workspace)
    plan = _plan(subset, config, earlier)
    key = selection_key(pool.version, gathered.version, config, plan.warm_from)
    folder = workspace.folder("selected_subset", subset.folder)
    checkpoint = _checkpoint(workspace, folder, key, methods.method_of(subset.config))
    selection = methods.select(frame, subset.config, checkpoint=checkpoint, warm=plan.warm)
    if selection.summary.get("shards_resumed"):
        workspace.log.info(f"{selection.summary['shards_resumed']} shards' winners read from their checkpoints")
    chosen = selection.subset(frame)
    texts = chosen["text"].to_list()
    ratio = round(law_ratio(texts), 4)
    drift: dict[str, float] = {}
    if plan.compare is not None:  # the scheduled full re-selection: how far the warm one would have drifted
        alternative = methods.select(frame, subset.config, warm=plan.compare)
        warm_ratio = round(law_ratio(alternative.subset(frame)["text"].to_list()), 4)
        drift = {"warm_ratio_zlib9": warm_ratio, "drift": round(warm_ratio / ratio - 1, 4)}
    provenance = selection.provenance.join(
        frame.select("id", "source", "index", "format", "n_bytes", "content_hash"), on="id", how="left"
    )
    version = subset_version(provenance["content_hash"].to_list(), subset.export_suffix)
    mixes = composition(facet_frame(frame), selection.positions)
    histogram = _histogram(selection, frame, ratios, mixes)
    path = storage.write_version(provenance, *folder, f"{version}.parquet")
    export = storage.write_records(chosen, *folder, f"{version}{subset.export_suffix}")
    plot = storage.write_bytes(histogram, *folder, f"{version}.ratio_histogram.png")
    if checkpoint is not None:  # the subset's files are written: nothing is left to resume
        checkpoint.remove()
    chosen_ratios = ratios[selection.positions]
    diversity = ngram_diversity(texts, 2)
    return SubsetResult(
        path=str(path),
        file=storage.relative(path),
        version=version,
        pool_version=pool.version,
        pool_file=pool.file,
        export_path=str(export),
        plot_path=str(plot),
        size=len(selection),
        bytes=int(chosen["n_bytes"].sum()),
        ratio_zlib9=ratio,
        mean_sample_ratio=round(float(np.mean(chosen_ratios)) if len(chosen_ratios) else 0.0, 4),
        pool_size=frame.height,
        seconds=selection.summary.get("seconds", 0.0),
        config=selection.config,
        resumed_from_round=int(selection.summary.get("resumed_from_round", 0)),
        reselect="warm" if plan.warm is not None else "full",
        refreshes_since_full=plan.refreshes,
        churn=churn(earlier.subset, provenance, earlier.pool, pool_frame) if earlier is not None else None,
        warm_ratio_zlib9=drift.get("warm_ratio_zlib9"),
        drift=drift.get("drift"),
        composition=mixes,
        distinct_2=round(diversity.distinct, 4),
        vendi_2gram=round(diversity.vendi, 2),
        strata=selection.summary.get("strata"),
        histogram=histogram,
    )


def _previous(storage: Storage, previous: SubsetResult | None, workspace: Workspace) -> _Previous | None:
    """The previous version's samples and its pool's content hashes, or None when there is none or its files are
    gone (pruned): the refresh is then a full one, and no churn is measured."""
    if previous is None:
        return None
    if not (storage.exists(previous.file) and storage.exists(previous.pool_file)):
        workspace.log.info(f"the previous subset {previous.version} or its pool is gone: selecting from scratch")
        return None
    subset = storage.read_parquet(previous.file, columns=["id", "content_hash", "rank"])
    return _Previous(previous, subset, storage.read_parquet(previous.pool_file, columns=["id", "content_hash"]))


@dataclass(frozen=True)
class _Plan:
    """How a refresh re-selects: warm from the previous version (``warm``, and its version ``warm_from``), or full
    (with ``compare``, the warm start it replaces on a scheduled full re-selection); the refreshes since the last
    full one."""

    warm: WarmStart | None = None
    warm_from: str | None = None
    compare: WarmStart | None = None
    refreshes: int = 0


def _plan(subset: SubsetSettings, config: dict[str, object], earlier: _Previous | None) -> _Plan:
    if earlier is None or subset.reselect == "full" or dict(earlier.result.config) != config:
        return _Plan()  # nothing to start from: another configuration selects other samples
    if subset.full_every is not None and earlier.result.refreshes_since_full + 1 >= subset.full_every:
        return _Plan(compare=earlier.warm_start())
    return _Plan(earlier.warm_start(), earlier.result.version, refreshes=earlier.result.refreshes_since_full + 1)


def _checkpoint(workspace: Workspace, folder: tuple[str, ...], key: str, method: str) -> SelectionCheckpoint | None:
    """Where a ZIP subset checkpoints its rounds: beside the subset, as ``<selection key>.checkpoint`` (and its parts).
    Baselines are fast and keep none; nor does remote storage, where a save would be an upload: a killed selection
    there starts again."""
    if not methods.SELECTION_METHODS[method].checkpoints:
        return None
    target = workspace.storage.local_path(*folder, f"{key}.checkpoint")
    if target is None:
        return None
    return SelectionCheckpoint(target, CHECKPOINT_SECONDS, warn=workspace.log.warning, info=workspace.log.info)


def _histogram(selection: Selection, frame: pl.DataFrame, ratios: np.ndarray, mixes: Mapping[str, FacetMix]) -> bytes:
    """Per-sample ratios of the pool and of the subset, and the mix of the facet farthest from the pool's, as a PNG
    (about 30 KB)."""
    farthest = max(mixes, key=lambda facet: mixes[facet].distance) if mixes else None
    return ratio_histogram_png(
        {"pool": ratios, selection.method: ratios[selection.positions]},
        f"{selection.method}: {len(selection)} of {frame.height} samples",
        mix=(farthest, mixes[farthest]) if farthest is not None else None,
    )
