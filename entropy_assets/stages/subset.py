"""Pool and scores to a selected subset: one method at one budget, with per-sample provenance, the subset in its
records' own form, and a histogram of per-sample ratios.

A subset's version is known before selecting (its pool, scores, the method's configuration and the code), so the
same inputs give the same files, written once. The whole selection is computed before anything is written: a
failure leaves earlier files as they were. A ZIP selection saves its rounds to a checkpoint beside the subset, so
that a rerun after a kill resumes (and logs ``resumed from round N``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from entropy_assets.entropy_law import law_ratio
from entropy_assets.plots import ratio_histogram_png
from entropy_assets.selection import methods
from entropy_assets.selection.base import Selection
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.methods import SelectionConfig
from entropy_assets.versions import subset_version

from .holdout import holdout_mask
from .results import PoolResult, ScoresResult, SubsetResult
from .scores import ScoringSettings, gather_scores
from .workspace import Workspace

CHECKPOINT_SECONDS = 2.0
"""A ZIP subset saves its checkpoint after a completed round once this many seconds have passed since the last
save: a kill loses at most this much work, and the saves cost no measurable time (every round: +13% on Alpaca
52K, ``benchmarks/selection_resume.py``)."""


@dataclass(frozen=True)
class SubsetSettings:
    """One subset: a method at a budget, its validated configuration, the evaluation samples held out of selection,
    and the form its records are exported in."""

    method: str
    budget: int
    config: SelectionConfig
    holdout: int = 0
    export_suffix: str = ".jsonl"

    @property
    def folder(self) -> str:
        """The storage folder of this subset's versions, and of its training runs': ``<method>_<budget>``."""
        return f"{self.method}_{self.budget}"


def select_subset(
    workspace: Workspace,
    pool: PoolResult,
    scores: ScoresResult | Mapping[str, ScoresResult | None] | None,
    subset: SubsetSettings,
    scoring: ScoringSettings,
) -> SubsetResult:
    """Select ``subset`` from ``pool`` (its latest ``scores``, or every shard's) and store it: provenance (parquet),
    the records in their own form, and the histogram; evaluation samples are never offered."""
    storage = workspace.storage
    pool_frame = storage.read_parquet(pool.file)
    gathered = gather_scores(workspace, pool, pool_frame, scoring, scores)
    offered = ~holdout_mask(pool_frame, subset.holdout)
    frame, ratios = pool_frame.filter(offered), gathered.frame.filter(offered)["ratio"].to_numpy()
    version = subset_version(pool.version, gathered.version, asdict(subset.config))
    folder = workspace.folder("selected_subset", subset.folder)
    checkpoint = _checkpoint(workspace, folder, version, subset.method)
    selection = methods.select(frame, subset.config, checkpoint=checkpoint)
    if selection.summary.get("shards_resumed"):
        workspace.log.info(f"{selection.summary['shards_resumed']} shards' winners read from their checkpoints")
    chosen = selection.subset(frame)
    provenance = selection.provenance.join(
        frame.select("id", "source", "index", "format", "n_bytes", "content_hash"), on="id", how="left"
    )
    histogram = _histogram(selection, frame, ratios)
    path = storage.write_version(provenance, *folder, f"{version}.parquet")
    export = storage.write_records(chosen, *folder, f"{version}{subset.export_suffix}")
    plot = storage.write_bytes(histogram, *folder, f"{version}.ratio_histogram.png")
    if checkpoint is not None:  # the subset's files are written: nothing is left to resume
        checkpoint.remove()
    chosen_ratios = ratios[selection.positions]
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
        ratio_zlib9=round(law_ratio(chosen["text"].to_list()), 4),
        mean_sample_ratio=round(float(np.mean(chosen_ratios)) if len(chosen_ratios) else 0.0, 4),
        pool_size=frame.height,
        seconds=selection.summary.get("seconds", 0.0),
        config=selection.config,
        resumed_from_round=int(selection.summary.get("resumed_from_round", 0)),
        histogram=histogram,
    )


def _checkpoint(workspace: Workspace, folder: tuple[str, ...], version: str, method: str) -> SelectionCheckpoint | None:
    """Where a ZIP subset checkpoints its rounds: beside the subset, as ``<version>.checkpoint`` (and its parts).
    Baselines are fast and keep none; nor does remote storage, where a save would be an upload: a killed selection
    there starts again."""
    if not methods.SELECTION_METHODS[method].checkpoints:
        return None
    target = workspace.storage.local_path(*folder, f"{version}.checkpoint")
    if target is None:
        return None
    return SelectionCheckpoint(target, CHECKPOINT_SECONDS, warn=workspace.log.warning, info=workspace.log.info)


def _histogram(selection: Selection, frame: pl.DataFrame, ratios: np.ndarray) -> bytes:
    """Per-sample ratios of the pool and of the subset, as a PNG (about 20 KB)."""
    return ratio_histogram_png(
        {"pool": ratios, selection.method: ratios[selection.positions]},
        f"{selection.method}: {len(selection)} of {frame.height} samples",
    )
