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

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from entropy_assets.composition import FacetMix, composition_from_counts, facet_frame
from entropy_assets.compression import KnownSizes
from entropy_assets.diversity import ngram_diversity
from entropy_assets.entropy_law import law_ratio
from entropy_assets.plots import ratio_histogram_png
from entropy_assets.selection import methods
from entropy_assets.selection.base import PROVENANCE_DESCRIPTIONS, LazyTexts, PoolAccess, Selection
from entropy_assets.selection.baselines import LIGHT_COLUMNS, Bands
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.hierarchical import HierarchicalConfig, final_pass
from entropy_assets.selection.methods import SelectionConfig
from entropy_assets.selection.near_duplicates import BAND_COLUMNS
from entropy_assets.selection.stratified import strata_ratios
from entropy_assets.selection.warm import WarmStart
from entropy_assets.selection.zip import ZipConfig
from entropy_assets.sources import export_suffix, labels_column
from entropy_assets.storage import Storage
from entropy_assets.versions import selection_key, subset_version

from .churn import Churn, churn
from .holdout import held_out_hashes
from .metadata import column_schema
from .pool_features import pool_features
from .pool_mix import facet_counts
from .pool_reads import rows_with
from .pool_result import PoolResult
from .scores import SELECTION_COLUMNS, ScoringSettings, gather_scores
from .scores_result import ScoresResult
from .shard_selection import ShardWinners
from .subset_result import SubsetResult
from .subset_settings import CHECKPOINT_SECONDS, SubsetSettings
from .workspace import Workspace

PROVENANCE_COLUMNS: dict[str, str] = {
    **PROVENANCE_DESCRIPTIONS,
    "source": "the file the record was read from",
    "index": "the record's place in its file",
    "format": "the record's format (alpaca, sharegpt, text, ...)",
    "n_bytes": "bytes of canonical text",
    "content_hash": "hash of the canonical text",
    "labels": "the record's labels as JSON (a preference label, stepwise labels, message weights); null if none",
}
"""What each column of a subset's provenance file holds (``SubsetResult.columns``)."""

ROWS_SUFFIX = ".rows.parquet"
"""A subset's chosen rows whole (the pool's columns, in the order chosen) are stored beside its provenance as
``<version>.rows.parquet``: a training run reads them, not the pool."""


@dataclass(frozen=True)
class _Previous:
    """The partition's previous version, as far as its files can still be read: its samples (``id``,
    ``content_hash``, ``rank``) and the content hashes of the pool it was chosen from."""

    result: SubsetResult
    subset: pl.DataFrame
    pool: pl.DataFrame | None
    """None where the pool is too large to read whole: lookups then read only the rows they need."""

    def warm_start(self) -> WarmStart:
        earlier = set(self.pool["content_hash"].to_list()) if self.pool is not None else None
        return WarmStart.from_provenance(self.subset, earlier)


def select_subset(
    workspace: Workspace,
    pool: PoolResult,
    scores: ScoresResult | Mapping[str, ScoresResult | None] | None,
    subset: SubsetSettings,
    scoring: ScoringSettings,
    previous: SubsetResult | None = None,
    winners: ShardWinners | None = None,
) -> SubsetResult:
    """Select ``subset`` from ``pool`` (its latest ``scores``, or every shard's) and store it: provenance (parquet),
    the records in their own form, and the histogram; evaluation samples, and samples the quality gate excluded
    (the scores' ``excluded``), are never offered. ``previous`` (the
    partition's previous version) is where a warm refresh starts, and what the churn is measured against.

    With ``winners`` (hierarchical ZIP's shards, each selected as a step of its own), only the final pass runs here,
    over the winners' rows: the pool is never held whole (``_final_pass``)."""
    if winners is not None:
        return _final_pass(workspace, pool, scores, subset, scoring, previous, winners)
    storage = workspace.storage
    light = storage.read_parquet(pool.file, columns=list(LIGHT_COLUMNS))
    gathered = gather_scores(workspace, pool, light, scoring, scores, SELECTION_COLUMNS)
    held = held_out_hashes(storage, pool.file, subset.holdout, subset.eval_paths, subset.columns)
    offered = gathered.frame["excluded"].is_null() & ~light["content_hash"].is_in(held.implode())
    offered_scores = gathered.frame.filter(offered)
    scores_version = gathered.version
    del gathered
    known = _known_sizes(offered_scores)
    left_out = light["content_hash"].filter(~offered)
    if methods.reads_light_columns(subset.config, known, offered_scores.height):
        offer = _Offer(light.filter(offered), offered, left_out, offered_scores, known, scores_version)
        del light, offered_scores  # the offered rows alone from here: at ten million samples about 600 MB a copy
        choice = _light_pass(workspace, pool, subset, offer, previous)
        del offer  # only the chosen rows are read from here
        return _store_choice(workspace, pool, subset, choice)
    del light
    pool_frame = storage.read_parquet(pool.file)  # row for row with ``light``: the same scores and offer
    frame = pool_frame.filter(offered)
    ratios = offered_scores["ratio"].to_numpy()
    config = methods.describe_config(subset.config)
    earlier = _previous(storage, previous, workspace)
    plan = _plan(subset, config, earlier)
    key = selection_key(pool.version, scores_version, config, plan.warm_from)
    folder = workspace.folder("selected_subset", subset.folder)
    checkpoint = _checkpoint(workspace, folder, key, methods.method_of(subset.config))
    selection = methods.select(frame, subset.config, checkpoint=checkpoint, warm=plan.warm, known=known)
    if selection.summary.get("shards_resumed"):
        workspace.log.info(f"{selection.summary['shards_resumed']} shards' winners read from their checkpoints")
    alternative = None
    if plan.compare is not None:  # the scheduled full re-selection: how far the warm one would have drifted
        alternative = methods.select(frame, subset.config, warm=plan.compare, known=known).subset(frame)
    chosen = selection.subset(frame)
    mixes = _composition(storage, pool.file, left_out, chosen)
    churned = churn(earlier.subset, _provenance(selection, chosen), earlier.pool, pool_frame) if earlier else None
    chosen_ratios = ratios[selection.positions]
    made = _Made(selection, chosen, ratios, chosen_ratios, mixes, churned, alternative, plan, frame.height)
    return _store(workspace, pool, subset, folder, made, checkpoint)


@dataclass(frozen=True)
class _Offer:
    """What a selection from light columns chooses among: the ``frame`` of the offered rows' light columns, which of
    the pool's rows are ``offered`` (not held out, not excluded), the content hashes of those ``left_out``, the
    offered rows' scores and ``known`` sizes, and the scores' version."""

    frame: pl.DataFrame
    offered: pl.Series
    left_out: pl.Series
    scores: pl.DataFrame
    known: KnownSizes | None
    scores_version: str


def _light_pass(
    workspace: Workspace, pool: PoolResult, subset: SubsetSettings, offer: _Offer, previous: SubsetResult | None
) -> _Choice:
    """A method that chooses from the pool's light columns (``methods.reads_light_columns``): it selects among the
    offered rows of the pool's light columns (``id``, ``content_hash``, ``n_bytes``, and the columns and stored
    features it ``needs``) with the offered samples' scores and sizes, reading the text of the samples it asks for
    (ZIP's candidates); ``_store_choice`` then reads the chosen rows whole, and the pool's mix a batch at a time:
    the pool's text is never held whole. It chooses the very samples the whole pool's selection would. A ZIP
    selection checkpoints its rounds as on the whole pool."""
    storage = workspace.storage
    offered, known = offer.offered, offer.known
    needs = methods.needs(subset.config)
    frame = _with_needs(storage, pool.file, offer.frame, offered, needs)
    ratios = offer.scores["ratio"].to_numpy()
    access = PoolAccess(
        bands=_bands(storage, pool.file, offered) if "near_duplicates" in needs else None,
        texts=_lazy_texts(storage, pool.file, frame, ratios, subset.config) if "texts" in needs else None,
    )
    config = methods.describe_config(subset.config)
    earlier = _previous(storage, previous, workspace)
    plan = _plan(subset, config, earlier)
    folder = workspace.folder("selected_subset", subset.folder)
    key = selection_key(pool.version, offer.scores_version, config, plan.warm_from)
    checkpoint = _checkpoint(workspace, folder, key, methods.method_of(subset.config))
    selection = methods.select(frame, subset.config, checkpoint=checkpoint, warm=plan.warm, known=known, access=access)
    if access.texts is not None:
        workspace.log.info(f"read the text of {access.texts.held:,} candidates in {access.texts.reads} scans")
    compared = None
    if plan.compare is not None:  # the scheduled full re-selection: how far the warm one would have drifted
        compared = methods.select(frame, subset.config, warm=plan.compare, known=known, access=access)
    return _Choice(selection, compared, ratios, len(frame), offer.left_out, earlier, plan, folder, checkpoint)


@dataclass(frozen=True)
class _Choice:
    """A light pass's selection (and the scheduled full re-selection's warm alternative, ``compared``) before its
    rows are read: what ``_store_choice`` needs once the offered rows' columns are let go."""

    selection: Selection
    compared: Selection | None
    ratios: np.ndarray
    """The offered samples' own ratios."""
    pool_size: int
    left_out: pl.Series
    earlier: _Previous | None
    plan: _Plan
    folder: tuple[str, ...]
    checkpoint: SelectionCheckpoint | None


def _store_choice(workspace: Workspace, pool: PoolResult, subset: SubsetSettings, choice: _Choice) -> SubsetResult:
    """Read the rows ``choice`` chose (and its alternative's) from the stored pool, a batch at a time, and store the
    subset with its composition and churn."""
    storage = workspace.storage
    selection, compared, earlier = choice.selection, choice.compared, choice.earlier
    counts = _offered_counts(storage, pool.file, choice.left_out)  # before the chosen rows are held
    ids = set(selection.provenance["id"].to_list())
    ids.update(compared.provenance["id"].to_list() if compared is not None else ())
    rows = rows_with(storage, pool.file, "id", ids)
    alternative = _in_order(rows.clone(), compared) if compared is not None else None
    chosen = _in_order(rows, selection)  # takes the columns out of ``rows`` one at a time
    del rows
    if "strata" in selection.summary:  # each stratum's ratio, from its chosen rows' text
        selection = strata_ratios(selection, chosen)
    mixes = composition_from_counts(counts, facet_frame(chosen))
    churned = None
    if earlier is not None:
        pool_hashes = storage.read_parquet(pool.file, columns=["id", "content_hash"])
        churned = churn(earlier.subset, _provenance(selection, chosen), earlier.pool, pool_hashes)
    ratios, plan, size = choice.ratios, choice.plan, choice.pool_size
    made = _Made(selection, chosen, ratios, ratios[selection.positions], mixes, churned, alternative, plan, size)
    return _store(workspace, pool, subset, choice.folder, made, choice.checkpoint)


def _with_needs(
    storage: Storage, pool_file: str, frame: pl.DataFrame, offered: pl.Series, needs: frozenset[str]
) -> pl.DataFrame:
    """``frame`` (the ``offered`` rows' light columns) with the pool's columns and the stored features
    (``pool_features``) that a method ``needs``: the ``source`` and ``format`` columns, and ``tokens`` and
    ``script``, a column each, row for row."""
    columns = [column for column in ("source", "format") if column in needs]
    extra = storage.read_parquet(pool_file, columns=columns).get_columns() if columns else []
    for column in ("tokens", "script"):
        if column in needs:
            extra.append(pl.Series(column, pool_features(storage, pool_file, column).column(column)))
    return frame.with_columns(column.filter(offered) for column in extra)


def _bands(storage: Storage, pool_file: str, offered: pl.Series) -> Bands:
    """The offered samples' near-duplicate keys, a band at a time, from the pool's stored features: only the keys
    of the samples asked for are gathered, a part at a time."""
    features = pool_features(storage, pool_file, "near_duplicates")
    rows = np.flatnonzero(offered.to_numpy())
    return lambda band, at: features.gather(BAND_COLUMNS[band], rows[at]).to_numpy()


def _lazy_texts(
    storage: Storage, pool_file: str, frame: pl.DataFrame, ratios: np.ndarray, config: SelectionConfig
) -> LazyTexts:
    """The offered samples' text (``frame``'s rows), read from the stored pool as ZIP asks for it, lowest own ratio
    first (stage 1's order) when it reads ahead."""
    ids = frame["id"]

    def fetch(positions: np.ndarray) -> list[bytes]:
        wanted = ids.gather(positions)
        rows = rows_with(storage, pool_file, "id", wanted.to_list(), ["id", "text"])
        ordered = pl.DataFrame({"id": wanted}).join(rows, on="id", how="left", maintain_order="left")
        return [text.encode("utf-8") for text in ordered["text"].to_list()]

    k1 = config.k1 if isinstance(config, ZipConfig) else 0
    priority = np.argsort(ratios, kind="stable")
    return LazyTexts(frame["n_bytes"].to_numpy(), frame["content_hash"], fetch, priority, 4 * k1)


def _composition(storage: Storage, pool_file: str, left_out: pl.Series, chosen: pl.DataFrame) -> dict[str, FacetMix]:
    """The chosen rows' mix over each facet against the offered pool's (``_offered_counts``)."""
    return composition_from_counts(_offered_counts(storage, pool_file, left_out), facet_frame(chosen))


def _offered_counts(storage: Storage, pool_file: str, left_out: pl.Series) -> dict[str, Counter[str]]:
    """How many offered samples have each value of each facet, from the facet counts each stored part keeps
    (computed once, when the part was parsed): every copy of a left-out content is left out (held out by content;
    the quality gate judges the text alone)."""
    return facet_counts(storage, pool_file, left_out.unique())


def _in_order(rows: pl.DataFrame, selection: Selection) -> pl.DataFrame:
    """The rows of ``selection``'s samples, in the order chosen, a column at a time: each column of ``rows`` is
    taken out of it (``drop_in_place``) as its reordered copy is made, so that the chosen rows are held about once,
    not twice (the longest 100,000 samples of ten million: 737 MB)."""
    at = selection.provenance.select("id").join(
        rows.select("id").with_row_index("at"), on="id", how="left", maintain_order="left"
    )["at"]
    ordered = {}
    for name in rows.columns:
        ordered[name] = rows.drop_in_place(name).gather(at)
    return pl.DataFrame(ordered)


@dataclass(frozen=True)
class _Made:
    """A selection and what its result reports: the rows it chose, the pool's and the chosen samples' own ratios,
    the composition, the churn, the scheduled full re-selection's warm alternative, and how it was planned."""

    selection: Selection
    chosen: pl.DataFrame
    """The chosen rows, whole, in the order chosen."""
    pool_ratios: np.ndarray
    chosen_ratios: np.ndarray
    mixes: dict[str, FacetMix]
    churn: Churn | None
    alternative: pl.DataFrame | None
    plan: _Plan
    pool_size: int
    """How many samples were offered."""


def _store(
    workspace: Workspace,
    pool: PoolResult,
    subset: SubsetSettings,
    folder: tuple[str, ...],
    made: _Made,
    checkpoint: SelectionCheckpoint | None,
) -> SubsetResult:
    """Write a selection's provenance, its records in their own form and its histogram; the subset's result."""
    storage = workspace.storage
    selection, chosen = made.selection, made.chosen
    texts = chosen["text"]  # a column, not a list: the longest samples at ten million are hundreds of MB
    ratio = round(law_ratio(texts), 4)
    drift: dict[str, float] = {}
    if made.alternative is not None:
        warm_ratio = round(law_ratio(made.alternative["text"]), 4)
        drift = {"warm_ratio_zlib9": warm_ratio, "drift": round(warm_ratio / ratio - 1, 4)}
    labels = chosen.select("id", labels_column(chosen, subset.columns))
    provenance = _provenance(selection, chosen).join(labels, on="id", how="left")
    suffix = export_suffix(subset.export_suffix, set(chosen["source"].to_list()))
    version = subset_version(provenance["content_hash"].to_list(), suffix)
    pool_size = made.pool_size
    histogram = _histogram(
        selection.method, len(selection), pool_size, made.pool_ratios, made.chosen_ratios, made.mixes
    )
    path = storage.write_version(provenance, *folder, f"{version}.parquet")
    storage.write_version(chosen, *folder, f"{version}{ROWS_SUFFIX}")  # what training reads: not the pool
    export = storage.write_records(chosen, *folder, f"{version}{suffix}")
    plot = storage.write_bytes(histogram, *folder, f"{version}.ratio_histogram.png")
    if checkpoint is not None:  # the subset's files are written: nothing is left to resume
        checkpoint.remove()
    diversity = ngram_diversity(texts, 2)
    chosen_ratios = made.chosen_ratios
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
        pool_size=pool_size,
        seconds=selection.summary.get("seconds", 0.0),
        config=selection.config,
        resumed_from_round=int(selection.summary.get("resumed_from_round", 0)),
        reselect="warm" if made.plan.warm is not None else "full",
        refreshes_since_full=made.plan.refreshes,
        churn=made.churn,
        warm_ratio_zlib9=drift.get("warm_ratio_zlib9"),
        drift=drift.get("drift"),
        composition=made.mixes,
        distinct_2=round(diversity.distinct, 4),
        vendi_2gram=round(diversity.vendi, 2),
        strata=selection.summary.get("strata"),
        columns=column_schema(provenance, PROVENANCE_COLUMNS),
        histogram=histogram,
    )


def _provenance(selection: Selection, rows: pl.DataFrame) -> pl.DataFrame:
    """The selection's provenance with the chosen samples' own columns (``rows`` holds at least those samples)."""
    return selection.provenance.join(
        rows.select("id", "source", "index", "format", "n_bytes", "content_hash"), on="id", how="left"
    )


def _known_sizes(scores: pl.DataFrame) -> KnownSizes | None:
    """The samples' sizes as the scores measured them, with the settings of the compressor that did."""
    if scores.is_empty() or scores["compressed_bytes"].null_count():
        return None
    return KnownSizes(json.loads(scores["compressor"][0]), scores["compressed_bytes"].to_numpy())


def _final_pass(
    workspace: Workspace,
    pool: PoolResult,
    scores: ScoresResult | Mapping[str, ScoresResult | None] | None,
    subset: SubsetSettings,
    scoring: ScoringSettings,
    previous: SubsetResult | None,
    winners: ShardWinners,
) -> SubsetResult:
    """Hierarchical ZIP's final pass over its shards' ``winners``: reads the rows of the winners (and of the
    previous version's samples, for a warm start) from the pool, the pool's own ratios from the scores, and its mix
    a batch at a time; never the whole pool."""
    storage = workspace.storage
    config = subset.config
    if not isinstance(config, HierarchicalConfig):
        raise ValueError(f"shard winners belong to zip_hierarchical, not {subset.method}")
    shards = scores if isinstance(scores, Mapping) else {}
    score_files = [result.file for _, result in sorted(shards.items()) if result is not None]
    held = held_out_hashes(storage, pool.file, subset.holdout, subset.eval_paths, subset.columns)
    described = methods.describe_config(subset.config)
    earlier = _previous(storage, previous, workspace, with_pool=False)
    plan = _plan(subset, described, earlier)
    ids = set(winners.frame(storage)["id"].to_list())
    if earlier is not None:
        ids.update(earlier.subset["id"].to_list())  # a warm start keeps those still in the pool
    frame = rows_with(storage, pool.file, "id", ids)
    if len(held):
        frame = frame.filter(~pl.col("content_hash").is_in(held.implode()))
    warm, compare = (_bounded_warm(storage, earlier, frame, start) for start in (plan.warm, plan.compare))
    plan = replace(plan, warm=warm, compare=compare)
    key = selection_key(pool.version, winners.version, described, plan.warm_from)
    folder = workspace.folder("selected_subset", subset.folder)
    checkpoint = _checkpoint(workspace, folder, key, methods.method_of(subset.config))
    pool_ratios = _pool_ratios(storage, score_files, held)
    selection = final_pass(frame, config, pool_size=len(pool_ratios), checkpoint=checkpoint, warm=plan.warm)
    alternative = None
    if plan.compare is not None:
        alternative = final_pass(frame, config, pool_size=len(pool_ratios), warm=plan.compare).subset(frame)
    chosen = selection.subset(frame)
    chosen_ratios = chosen.select("id").join(
        _rows_of(storage, score_files, set(chosen["id"].to_list()), ["id", "ratio"]), on="id", how="left"
    )["ratio"]
    mixes = composition_from_counts(facet_counts(storage, pool.file, held), facet_frame(chosen))
    churned = None
    if earlier is not None:
        involved = set(earlier.subset["id"].to_list()) | set(chosen["id"].to_list())
        old_pool = rows_with(storage, earlier.result.pool_file, "id", involved, ["id", "content_hash"])
        new_pool = rows_with(storage, pool.file, "id", involved, ["id", "content_hash"])
        churned = churn(earlier.subset, _provenance(selection, chosen), old_pool, new_pool)
    made = _Made(
        selection, chosen, pool_ratios, chosen_ratios.to_numpy(), mixes, churned, alternative, plan, len(pool_ratios)
    )
    return _store(workspace, pool, subset, folder, made, checkpoint)


def _bounded_warm(
    storage: Storage, earlier: _Previous | None, frame: pl.DataFrame, start: WarmStart | None
) -> WarmStart | None:
    """A warm start for a selection among ``frame``'s rows: the earlier subset, with the earlier pool's content
    hashes looked up for those rows only."""
    if start is None or earlier is None:
        return None
    hashes = set(frame["content_hash"].to_list())
    known = rows_with(storage, earlier.result.pool_file, "content_hash", hashes, ["content_hash"])
    return WarmStart.from_provenance(earlier.subset, set(known["content_hash"].to_list()))


def _pool_ratios(storage: Storage, score_files: list[str], held: pl.Series) -> np.ndarray:
    """Every offered sample's own ratio (not held out, not excluded by the quality gate), from the scores' files, a
    file at a time."""
    parts = []
    for file in score_files:
        columns = ["ratio", "excluded", "content_hash"] if len(held) else ["ratio", "excluded"]
        scores = storage.read_parquet(file, columns=columns)
        scores = scores.filter(pl.col("excluded").is_null())
        if len(held):
            scores = scores.filter(~pl.col("content_hash").is_in(held.implode()))
        parts.append(scores["ratio"].to_numpy())
    return np.concatenate(parts) if parts else np.array([], dtype=np.float64)


def _rows_of(storage: Storage, files: list[str], ids: set[str], columns: list[str]) -> pl.DataFrame:
    """The rows of ``ids`` in the stored ``files``."""
    return pl.concat([rows_with(storage, file, "id", ids, columns) for file in files])


def _previous(
    storage: Storage, previous: SubsetResult | None, workspace: Workspace, *, with_pool: bool = True
) -> _Previous | None:
    """The previous version's samples and (``with_pool``) its pool's content hashes, or None when there is none or
    its files are gone (pruned): the refresh is then a full one, and no churn is measured."""
    if previous is None:
        return None
    if not (storage.exists(previous.file) and storage.exists(previous.pool_file)):
        workspace.log.info(f"the previous subset {previous.version} or its pool is gone: selecting from scratch")
        return None
    subset = storage.read_parquet(previous.file, columns=["id", "content_hash", "rank"])
    pool = storage.read_parquet(previous.pool_file, columns=["id", "content_hash"]) if with_pool else None
    return _Previous(previous, subset, pool)


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


def _histogram(
    method: str, size: int, pool_size: int, ratios: np.ndarray, chosen: np.ndarray, mixes: Mapping[str, FacetMix]
) -> bytes:
    """Per-sample ratios of the pool and of the subset, and the mix of the facet farthest from the pool's, as a PNG
    (about 30 KB)."""
    farthest = max(mixes, key=lambda facet: mixes[facet].distance) if mixes else None
    return ratio_histogram_png(
        {"pool": ratios, method: chosen},
        f"per-sample ratios: {method}, {size} of {pool_size}",
        mix=(farthest, mixes[farthest]) if farthest is not None else None,
    )
