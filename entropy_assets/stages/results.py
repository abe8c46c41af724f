"""What each step of the pipeline hands on: a frozen result with its version, its files and its figures.

A result becomes asset metadata through ``to_metadata()`` and is read back from it through ``from_metadata()``;
this module is the only place where metadata keys are spelled. Assets, the command line, audits, retention and
the law all read these results, never the keys. Values are plain (str, int, float, bool, dict), except text meant
as a path (``FilePath``) or as markdown (``Markdown``), which the Dagster layer shows as such.
"""

from __future__ import annotations

import base64
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from entropy_assets.composition import FacetMix
from entropy_assets.entropy_law import LawPoint
from entropy_assets.quality import share

from .churn import Churn


class FilePath(str):
    """Metadata text that is a path to a file."""


class Markdown(str):
    """Metadata text shown as markdown."""


@dataclass(frozen=True)
class Table:
    """Metadata shown as a table: ``columns`` as (name, kind) pairs, kind one of string, int or float; one mapping
    per row. Shown only: a result keeps the exact values it reads back under keys of their own."""

    columns: tuple[tuple[str, str], ...]
    rows: tuple[Mapping[str, Any], ...]


COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("budget", "int"),
    ("method", "string"),
    ("R", "float"),
    ("L", "float"),
    ("Z", "float"),
    ("runs", "int"),
    ("difference", "float"),
    ("interval", "string"),
    ("verdict", "string"),
)
"""The columns of the method comparison's table (``MethodComparison.rows``)."""


class MetadataError(ValueError):
    """A materialization's metadata lacks what a result needs, or holds a value of the wrong kind."""


def markdown_image(png: bytes, title: str) -> Markdown:
    """A PNG embedded in markdown as a data URI (Dagster has no image metadata type)."""
    return Markdown(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


_EMBEDDED_PNG = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]*)\)")


def embedded_png(markdown: str) -> bytes:
    """The PNG that ``markdown_image`` embedded."""
    found = _EMBEDDED_PNG.fullmatch(markdown)
    if found is None:
        raise MetadataError("expected a markdown image with an embedded PNG")
    return base64.b64decode(found.group(1))


def _optional(value: float | None) -> float:
    """A number that may be absent, as metadata (Dagster charts floats; NaN marks the absence)."""
    return float("nan") if value is None else value


def _present(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class _Reader:
    """Typed access to metadata values, with errors that name the missing or mistyped key."""

    def __init__(self, values: Mapping[str, Any], what: str) -> None:
        self.values, self.what = values, what

    def has(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.values:
            raise MetadataError(f"{self.what} metadata has no {key!r}")
        value = self.values[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise MetadataError(f"{self.what} metadata {key!r} is a {type(value).__name__}, which it cannot be")
        return value

    def text(self, key: str) -> str:
        return str(self.get(key, str))

    def integer(self, key: str) -> int:
        return int(self.get(key, int))

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float)))

    def mapping(self, key: str) -> dict[str, Any]:
        return dict(self.get(key, dict))

    def sequence(self, key: str) -> list[Any]:
        """A list; empty when the key is absent (metadata written before it existed)."""
        return list(self.get(key, list)) if key in self.values else []


@dataclass(frozen=True)
class RawDataResult:
    """An observation of the raw data: its version and the hash of every file."""

    paths: tuple[str, ...]
    version: str
    file_hashes: Mapping[str, str]

    def to_metadata(self) -> dict[str, Any]:
        return {"paths": ", ".join(self.paths), "data_version": self.version, "files": dict(self.file_hashes)}

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "raw_data")
        return cls(tuple(read.text("paths").split(", ")), read.text("data_version"), read.mapping("files"))


@dataclass(frozen=True)
class PoolResult:
    """Every record of a raw data version as canonical text (parquet), and what loading it kept and dropped."""

    path: str
    """Where the pool is (shown in the UI); ``file`` is the same relative to the storage."""
    file: str
    version: str
    """The pool's version: the raw data version it was read from, and its reading settings where not the default
    (``versions.pool_version``)."""
    records_read: int
    records_kept: int
    dropped: Mapping[str, int]
    invalid_utf8: int
    bytes: int
    formats: Mapping[str, int]
    files: int
    files_parsed: int
    """Files parsed for this build: new or changed since an earlier build (the others' rows were reused)."""
    records_parsed: int
    shard_file: str | None = None
    """With shards: a copy of the scored columns ordered by shard, so that each shard is read on its own."""
    shard_fingerprints: Mapping[str, str] | None = None
    raw_data_version: str = ""
    """The raw data version the pool was read from ("": the pool's version)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Stored files this output was made from (relative to the storage): none."""
        return ()

    def to_metadata(self) -> dict[str, Any]:
        shards: dict[str, Any] = {}
        if self.shard_file is not None and self.shard_fingerprints is not None:
            shards = {"shard_file": self.shard_file, "shard_fingerprints": dict(self.shard_fingerprints)}
        return {
            "path": FilePath(self.path),
            "file": self.file,
            "dagster/row_count": self.records_kept,
            "records_read": self.records_read,
            "records_kept": self.records_kept,
            "dropped": dict(self.dropped),
            "invalid_utf8_replaced": self.invalid_utf8,
            "bytes": self.bytes,
            "formats": dict(self.formats),
            "files": self.files,
            "files_parsed": self.files_parsed,
            "files_reused": self.files - self.files_parsed,
            "records_parsed": self.records_parsed,
            "records_reused": self.records_read - self.records_parsed,
            "raw_data_version": self.raw_data_version or self.version,
            "version": self.version,
            **shards,
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "pool")
        sharded = read.has("shard_file")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            version=read.text("version"),
            records_read=read.integer("records_read"),
            records_kept=read.integer("records_kept"),
            dropped=read.mapping("dropped"),
            invalid_utf8=read.integer("invalid_utf8_replaced"),
            bytes=read.integer("bytes"),
            formats=read.mapping("formats"),
            files=read.integer("files"),
            # a pool built before parts were reused parsed every file
            files_parsed=read.integer("files_parsed" if read.has("files_parsed") else "files"),
            records_parsed=read.integer("records_parsed" if read.has("records_parsed") else "records_read"),
            shard_file=read.text("shard_file") if sharded else None,
            shard_fingerprints=read.mapping("shard_fingerprints") if sharded else None,
            raw_data_version=read.text("raw_data_version") if read.has("raw_data_version") else "",
        )


@dataclass(frozen=True)
class ScoresResult:
    """Per-sample compressed sizes and ratios of a pool, or of one of its shards."""

    path: str
    file: str
    version: str
    pool_version: str
    rows: int
    rescored: int
    """Samples compressed by this run; the others' sizes were reused by content hash."""
    seconds: float
    mean_ratio: float
    compressor: Mapping[str, Any]
    shard: str | None = None
    shard_fingerprint: str | None = None
    shards: int | None = None
    excluded: Mapping[str, int] = field(default_factory=dict)
    """Samples the quality gate keeps out of every selection, by reason."""
    excluded_sources: Mapping[str, int] = field(default_factory=dict)
    """The source files with the most excluded samples, most first (at most five)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Stored files this output was made from that its metadata names: none."""
        return ()

    @property
    def excluded_share(self) -> float:
        """The share of the scored samples that the quality gate excluded."""
        return share(self.excluded, self.rows)

    def to_metadata(self) -> dict[str, Any]:
        shard: dict[str, Any] = {}
        if self.shard is not None:
            shard = {"shard": self.shard, "shard_fingerprint": self.shard_fingerprint, "shards": self.shards}
        excluded = sum(self.excluded.values())
        return {
            "path": FilePath(self.path),
            "file": self.file,
            "version": self.version,
            "pool_version": self.pool_version,
            **shard,
            "dagster/row_count": self.rows,
            "rescored": self.rescored,
            "reused": self.rows - self.rescored,
            "seconds": self.seconds,
            "mean_ratio": self.mean_ratio,
            "compressor": dict(self.compressor),
            "excluded": dict(self.excluded),
            "excluded_samples": excluded,
            "excluded_share": round(self.excluded_share, 6),
            "excluded_sources": dict(self.excluded_sources),
            "quality_gate": exclusion_table(self.excluded, self.rows),
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "compression_scores")
        sharded = read.has("shard")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            version=read.text("version"),
            pool_version=read.text("pool_version"),
            rows=read.integer("dagster/row_count"),
            rescored=read.integer("rescored"),
            seconds=read.number("seconds"),
            mean_ratio=read.number("mean_ratio"),
            compressor=read.mapping("compressor"),
            shard=read.text("shard") if sharded else None,
            shard_fingerprint=read.text("shard_fingerprint") if sharded else None,
            shards=read.integer("shards") if sharded else None,
            excluded=read.mapping("excluded") if read.has("excluded") else {},
            excluded_sources=read.mapping("excluded_sources") if read.has("excluded_sources") else {},
        )


def exclusion_table(excluded: Mapping[str, int], rows: int) -> Table:
    """The quality gate's exclusions by reason, with their share of ``rows`` samples, as a table."""
    return Table(
        columns=(("reason", "string"), ("samples", "int"), ("share", "float")),
        rows=tuple(
            {"reason": reason, "samples": count, "share": round(count / rows, 6) if rows else 0.0}
            for reason, count in excluded.items()
        ),
    )


@dataclass(frozen=True)
class ShardSelectionResult:
    """One shard's winners for hierarchical ZIP at one budget: the samples ZIP chose within the shard (parquet:
    ``id``, ``content_hash``, ``n_bytes``, ``rank``), which the final pass selects among."""

    path: str
    file: str
    version: str
    """Names what the winners were chosen from: the shard's scores version, the settings and a warm start."""
    pool_version: str
    scores_version: str
    scores_file: str
    shard: str
    budget: int
    settings: str
    """The hash of the shard's ZIP settings: winners of other settings are not current."""
    winners: int
    candidates: int
    """The shard's samples offered to the selection."""
    seconds: float
    reselect: str
    """``full``, ``warm`` (from the shard's previous winners) or ``reused`` (the same inputs were selected before)."""
    resumed_from_round: int = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """Stored files the winners were chosen from: the shard's scores."""
        return (self.scores_file,)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "path": FilePath(self.path),
            "file": self.file,
            "version": self.version,
            "pool_version": self.pool_version,
            "scores_version": self.scores_version,
            "scores_file": self.scores_file,
            "shard": self.shard,
            "budget": self.budget,
            "settings": self.settings,
            "dagster/row_count": self.winners,
            "candidates": self.candidates,
            "seconds": self.seconds,
            "reselect": self.reselect,
            "resumed_from_round": self.resumed_from_round,
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "shard_selection")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            version=read.text("version"),
            pool_version=read.text("pool_version"),
            scores_version=read.text("scores_version"),
            scores_file=read.text("scores_file"),
            shard=read.text("shard"),
            budget=read.integer("budget"),
            settings=read.text("settings"),
            winners=read.integer("dagster/row_count"),
            candidates=read.integer("candidates"),
            seconds=read.number("seconds"),
            reselect=read.text("reselect"),
            resumed_from_round=read.integer("resumed_from_round"),
        )


@dataclass(frozen=True)
class SubsetResult:
    """A subset chosen by one method at one budget: its provenance (parquet), its records in their own form, its
    histogram, and what a reviewer asks first (size, bytes, the law's ratio R)."""

    path: str
    file: str
    """The provenance: the chosen ids, in order, with per-sample scores."""
    version: str
    pool_version: str
    pool_file: str
    export_path: str
    plot_path: str
    size: int
    bytes: int
    ratio_zlib9: float
    """R, the subset's compression ratio as the entropy law measures it."""
    mean_sample_ratio: float
    pool_size: int
    seconds: float
    config: Mapping[str, Any]
    resumed_from_round: int = 0
    reselect: str = "full"
    """``warm``: started from the previous version; ``full``: selected from scratch."""
    refreshes_since_full: int = 0
    churn: Churn | None = None
    """Against the partition's previous version; None for the first."""
    warm_ratio_zlib9: float | None = None
    """On a scheduled full re-selection: R of the warm one it replaced."""
    drift: float | None = None
    """On a scheduled full re-selection: the warm R over the full R, less 1."""
    composition: Mapping[str, FacetMix] | None = None
    """The subset's mix against the pool's, per facet (source, format, script, length)."""
    distinct_2: float | None = None
    """Model-free diversity beside R: distinct word bigrams over all of the subset's bigrams."""
    vendi_2gram: float | None = None
    """Model-free diversity beside R: the Vendi score of the samples' word-bigram vectors (1 to the sample count)."""
    strata: Mapping[str, Any] | None = None
    """A stratified selection's strata: each one's pool size, quota, selected size and zlib-9 ratio."""
    histogram: bytes = field(default=b"", repr=False)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Stored files this subset was selected from: its pool."""
        return (self.pool_file,)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "path": FilePath(self.path),
            "file": self.file,
            "version": self.version,
            "pool_version": self.pool_version,
            "pool_file": self.pool_file,
            "resumed_from_round": self.resumed_from_round,
            "export": FilePath(self.export_path),
            "plot_path": FilePath(self.plot_path),
            "dagster/row_count": self.size,
            "size": self.size,
            "bytes": self.bytes,
            "compression_ratio_zlib9": self.ratio_zlib9,
            "mean_sample_ratio": self.mean_sample_ratio,
            "pool_size": self.pool_size,
            "seconds": self.seconds,
            "reselect": self.reselect,
            "refreshes_since_full": self.refreshes_since_full,
            **_churn_metadata(self.churn),
            **({} if self.drift is None else {"warm_ratio_zlib9": self.warm_ratio_zlib9, "drift": self.drift}),
            **_composition_metadata(self.composition),
            **({} if self.distinct_2 is None else {"distinct_2": self.distinct_2, "vendi_2gram": self.vendi_2gram}),
            **({} if self.strata is None else {"strata": dict(self.strata)}),
            "config": dict(self.config),
            "ratio_histogram": markdown_image(self.histogram, "per-sample ratios"),
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "selected_subset")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            version=read.text("version"),
            pool_version=read.text("pool_version"),
            pool_file=read.text("pool_file"),
            export_path=read.text("export"),
            plot_path=read.text("plot_path"),
            size=read.integer("size"),
            bytes=read.integer("bytes"),
            ratio_zlib9=read.number("compression_ratio_zlib9"),
            mean_sample_ratio=read.number("mean_sample_ratio"),
            pool_size=read.integer("pool_size"),
            seconds=read.number("seconds"),
            config=read.mapping("config"),
            resumed_from_round=read.integer("resumed_from_round"),
            # Subsets recorded before refreshes could start warm have no reselect: they were full selections.
            reselect=read.text("reselect") if read.has("reselect") else "full",
            refreshes_since_full=read.integer("refreshes_since_full") if read.has("refreshes_since_full") else 0,
            churn=_read_churn(read),
            warm_ratio_zlib9=read.number("warm_ratio_zlib9") if read.has("drift") else None,
            drift=read.number("drift") if read.has("drift") else None,
            composition=_read_composition(read),
            distinct_2=read.number("distinct_2") if read.has("distinct_2") else None,
            vendi_2gram=read.number("vendi_2gram") if read.has("distinct_2") else None,
            strata=read.mapping("strata") if read.has("strata") else None,
            histogram=embedded_png(read.text("ratio_histogram")),
        )


def _churn_metadata(churn: Churn | None) -> dict[str, Any]:
    """A churn as numbers Dagster charts across materializations, and its reasons as JSON."""
    if churn is None:
        return {}
    counts = {"churn_kept": churn.kept, "churn_added": churn.added, "churn_removed": churn.removed}
    return {**counts, "churn": dict(churn.by_reason)}


def _composition_metadata(mixes: Mapping[str, FacetMix] | None) -> dict[str, Any]:
    """Each facet's distance from the pool's mix as a number Dagster charts (``composition_tvd_<facet>``), and the
    mixes themselves as JSON (``composition``: per facet, the pool's and the subset's shares)."""
    if mixes is None:
        return {}
    distances = {f"composition_tvd_{facet}": mixed.distance for facet, mixed in mixes.items()}
    shares = {facet: {"pool": dict(mixed.pool), "subset": dict(mixed.subset)} for facet, mixed in mixes.items()}
    return {**distances, "composition": shares}


def _read_composition(read: _Reader) -> dict[str, FacetMix] | None:
    if not read.has("composition"):  # subsets recorded before composition was measured
        return None
    return {
        facet: FacetMix(dict(mixes["pool"]), dict(mixes["subset"]), read.number(f"composition_tvd_{facet}"))
        for facet, mixes in read.mapping("composition").items()
    }


def _read_churn(read: _Reader) -> Churn | None:
    if not read.has("churn_kept"):
        return None
    counts = (read.integer("churn_kept"), read.integer("churn_added"), read.integer("churn_removed"))
    return Churn(*counts, by_reason={reason: int(n) for reason, n in read.mapping("churn").items()})


@dataclass(frozen=True)
class TrainingResult:
    """A training run on one subset: its losses (L, Z), its cost, and exactly which subset, pool and raw data it
    trained on."""

    path: str
    file: str
    method: str
    budget: int
    first_epoch_loss: float
    """L, the mean step loss over the first pass through the subset."""
    eval_loss: float | None
    performance: float | None
    """Z: the evaluation loss, or the named score."""
    performance_measure: str
    loss_kind: str
    steps: int
    tokens: int
    seconds: float
    tokens_per_second: float
    subset_ratio_zlib9: float
    """R of the texts trained on."""
    subset_samples: int
    subset_version: str
    """The trained-on samples' content, in order."""
    selected_subset_version: str
    subset_file: str
    pool_file: str
    pool_version: str
    backend: str
    scores: Mapping[str, float]
    resumed_from_step: int = 0
    loss_curve: bytes = field(default=b"", repr=False)
    seeds: tuple[int, ...] = ()
    """The training seeds of the run (L and Z are means over them)."""
    first_epoch_losses: tuple[float, ...] = ()
    """L at each training seed, with two seeds or more."""
    performances: tuple[float, ...] = ()
    """Z at each training seed, with two seeds or more."""
    eval_version: str = ""
    """The evaluation set's content (its samples' content hashes): Z compares across runs of the same one."""
    eval_samples: int = 0

    @property
    def performance_sd(self) -> float | None:
        """The standard deviation of Z between training seeds, with two seeds or more."""
        return statistics.stdev(self.performances) if len(self.performances) >= 2 else None

    @property
    def inputs(self) -> tuple[str, ...]:
        """Stored files this run trained on: its subset's provenance and the pool."""
        return (self.subset_file, self.pool_file)

    @property
    def raw_data_version(self) -> str:
        """A pool is named by the raw data version it read."""
        return self.pool_version

    def point(self, timestamp: float = 0.0, run_id: str = "") -> LawPoint:
        """This run as a point of the entropy law."""
        return LawPoint(
            ratio=self.subset_ratio_zlib9,
            loss=self.first_epoch_loss,
            performance=self.performance,
            method=self.method,
            budget=self.budget,
            data_version=self.raw_data_version,
            timestamp=timestamp,
            run_id=run_id,
            subset_version=self.subset_version,
            losses=self.first_epoch_losses,
            performances=self.performances,
            eval_version=self.eval_version,
        )

    def to_metadata(self) -> dict[str, Any]:
        return {
            "path": FilePath(self.path),
            "file": self.file,
            "method": self.method,
            "budget": self.budget,
            "first_epoch_loss": self.first_epoch_loss,
            "eval_loss": _optional(self.eval_loss),
            "performance": _optional(self.performance),
            "performance_measure": self.performance_measure,
            "loss_kind": self.loss_kind,
            "steps": self.steps,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "resumed_from_step": self.resumed_from_step,
            "tokens_per_second": self.tokens_per_second,
            "subset_compression_ratio_zlib9": self.subset_ratio_zlib9,
            "subset_samples": self.subset_samples,
            "subset_version": self.subset_version,
            "selected_subset_version": self.selected_subset_version,
            "subset_file": self.subset_file,
            "pool_file": self.pool_file,
            "pool_version": self.pool_version,
            "raw_data_version": self.raw_data_version,
            "backend": self.backend,
            "scores": dict(self.scores),
            "loss_curve": markdown_image(self.loss_curve, "training loss"),
            "training_seeds": list(self.seeds),
            **self._per_seed(),
            "eval_version": self.eval_version,
            "eval_samples": self.eval_samples,
        }

    def _per_seed(self) -> dict[str, Any]:
        if not self.performances and not self.first_epoch_losses:
            return {}
        return {
            "first_epoch_loss_seeds": list(self.first_epoch_losses),
            "performance_seeds": list(self.performances),
            "performance_sd": _optional(self.performance_sd),
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "training_run")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            method=read.text("method"),
            budget=read.integer("budget"),
            first_epoch_loss=read.number("first_epoch_loss"),
            eval_loss=_present(read.number("eval_loss")),
            performance=_present(read.number("performance")),
            performance_measure=read.text("performance_measure"),
            loss_kind=read.text("loss_kind"),
            steps=read.integer("steps"),
            tokens=read.integer("tokens"),
            seconds=read.number("seconds"),
            tokens_per_second=read.number("tokens_per_second"),
            subset_ratio_zlib9=read.number("subset_compression_ratio_zlib9"),
            subset_samples=read.integer("subset_samples"),
            subset_version=read.text("subset_version"),
            selected_subset_version=read.text("selected_subset_version"),
            subset_file=read.text("subset_file"),
            pool_file=read.text("pool_file"),
            pool_version=read.text("pool_version"),
            backend=read.text("backend"),
            scores={name: float(value) for name, value in read.mapping("scores").items()},
            resumed_from_step=read.integer("resumed_from_step"),
            loss_curve=embedded_png(read.text("loss_curve")),
            seeds=tuple(int(v) for v in read.sequence("training_seeds")),
            first_epoch_losses=tuple(float(v) for v in read.sequence("first_epoch_loss_seeds")),
            performances=tuple(float(v) for v in read.sequence("performance_seeds")),
            eval_version=read.text("eval_version") if read.has("eval_version") else "",
            eval_samples=read.integer("eval_samples") if read.has("eval_samples") else 0,
        )


@dataclass(frozen=True)
class CurveSummary:
    """The best form of L(R): its parameters with their intervals (as shown), R squared, leave-one-out error, and
    every form's comparison."""

    form: str
    formula: str
    r_squared: float
    cv_rmse: float
    a: float
    a_interval: str
    b: float
    b_interval: str
    forms: Mapping[str, Any]


@dataclass(frozen=True)
class FitSummary:
    """A fitted relation of Z: its formula, R squared, and the fit's details."""

    formula: str
    r_squared: float
    details: Mapping[str, Any]


@dataclass(frozen=True)
class LawResult:
    """The entropy law fitted on every training run recorded: L(R), Z(R) and Z(R, L) where the points allow,
    which methods entered the fit, the table of points and the plots."""

    path: str
    """The fit, as JSON."""
    plot_paths: Mapping[str, str]
    n_points: int
    n_fitted: int
    n_data_versions: int
    notes: str
    fit_methods: tuple[str, ...]
    """The methods whose runs entered the fit; every method when empty."""
    points_table: str
    loss: CurveSummary | None = None
    performance: FitSummary | None = None
    plane: FitSummary | None = None
    comparison: Mapping[str, Any] = field(default_factory=dict)
    """Each method's R, L and Z per budget against random's, with the difference's interval and the verdict
    (``MethodComparison.to_dict``); empty without random runs."""
    comparison_rows: tuple[Mapping[str, Any], ...] = ()
    """The comparison as the UI's table shows it (``MethodComparison.rows``)."""
    verdict: str = ""
    """Whether each ZIP method beats random on Z, one sentence each."""
    plots: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> str:
        return "fitted" if self.loss is not None else "too few points to fit L(R)"

    def to_metadata(self) -> dict[str, Any]:
        """Headline numbers as floats and ints (Dagster charts them across materializations), details as JSON."""
        metadata: dict[str, Any] = {
            "path": FilePath(self.path),
            "plots": dict(self.plot_paths),
            "n_points": self.n_points,
            "n_fitted": self.n_fitted,
            "n_data_versions": self.n_data_versions,
            "status": self.status,
            "notes": self.notes,
        }
        if self.loss is not None:
            metadata |= {
                "loss_form": self.loss.form,
                "loss_formula": self.loss.formula,
                "loss_r_squared": self.loss.r_squared,
                "loss_cv_rmse": self.loss.cv_rmse,
                "loss_a": self.loss.a,
                "loss_a_interval": self.loss.a_interval,
                "loss_b": self.loss.b,
                "loss_b_interval": self.loss.b_interval,
                "loss_forms": dict(self.loss.forms),
            }
        if self.performance is not None:
            metadata |= {
                "performance_formula": self.performance.formula,
                "performance_r_squared": self.performance.r_squared,
                "performance_forms": dict(self.performance.details),
            }
        if self.plane is not None:
            metadata |= {
                "performance_plane_formula": self.plane.formula,
                "performance_plane_r_squared": self.plane.r_squared,
                "performance_plane": dict(self.plane.details),
            }
        return {
            **metadata,
            "fit_methods": ", ".join(self.fit_methods) or "all",
            "points": Markdown(self.points_table),
            **(self._comparison_metadata() if self.verdict else {}),
            **{name: markdown_image(png, name) for name, png in self.plots.items()},
        }

    def _comparison_metadata(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "method_comparison": Table(COMPARISON_COLUMNS, self.comparison_rows),
            "method_comparison_rows": [dict(row) for row in self.comparison_rows],
            "method_comparison_details": dict(self.comparison),
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = _Reader(values, "entropy_law")
        loss = performance = plane = None
        if read.has("loss_form"):
            loss = CurveSummary(
                form=read.text("loss_form"),
                formula=read.text("loss_formula"),
                r_squared=read.number("loss_r_squared"),
                cv_rmse=read.number("loss_cv_rmse"),
                a=read.number("loss_a"),
                a_interval=read.text("loss_a_interval"),
                b=read.number("loss_b"),
                b_interval=read.text("loss_b_interval"),
                forms=read.mapping("loss_forms"),
            )
        if read.has("performance_formula"):
            performance = FitSummary(
                read.text("performance_formula"),
                read.number("performance_r_squared"),
                read.mapping("performance_forms"),
            )
        if read.has("performance_plane_formula"):
            plane = FitSummary(
                read.text("performance_plane_formula"),
                read.number("performance_plane_r_squared"),
                read.mapping("performance_plane"),
            )
        plot_paths = read.mapping("plots")
        methods = read.text("fit_methods")
        return cls(
            path=read.text("path"),
            plot_paths=plot_paths,
            n_points=read.integer("n_points"),
            n_fitted=read.integer("n_fitted"),
            n_data_versions=read.integer("n_data_versions"),
            notes=read.text("notes"),
            fit_methods=() if methods == "all" else tuple(m.strip() for m in methods.split(",")),
            points_table=read.text("points"),
            loss=loss,
            performance=performance,
            plane=plane,
            comparison=read.mapping("method_comparison_details") if read.has("method_comparison_details") else {},
            comparison_rows=tuple(read.sequence("method_comparison_rows")),
            verdict=read.text("verdict") if read.has("verdict") else "",
            plots={name: embedded_png(read.text(name)) for name in plot_paths},
        )


@dataclass(frozen=True)
class Assessment:
    """Where a run's (R, L) fell against the law fitted on earlier data versions."""

    direction: str
    residual: float
    predicted_loss: float
    band_low: float
    band_high: float
    predicted_performance: float | None
    extrapolated: bool
    fit: str
    fit_r_squared: float
    explanation: str


@dataclass(frozen=True)
class RiskResult:
    """The risk check of a training run: whether its (R, L) lies within the prediction band of the law fitted on
    earlier data versions, and why it passed or failed."""

    passed: bool
    status: str
    point: LawPoint | None = None
    earlier_points: int | None = None
    earlier_versions: int | None = None
    assessment: Assessment | None = None
    summary: str | None = None
    """One line for the check's description, when the run was assessed."""
    severity: str = "error"
    """How a failure counts: ``error`` or ``warn`` (the law's setting, for an assessed run)."""

    def to_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if self.point is not None:
            metadata |= {
                "data_version": self.point.data_version,
                "ratio": self.point.ratio,
                "first_epoch_loss": self.point.loss,
                "method": self.point.method,
                "budget": self.point.budget,
            }
        if self.earlier_points is not None:
            metadata |= {"earlier_points": self.earlier_points, "earlier_versions": self.earlier_versions}
        metadata["status"] = self.status
        if self.assessment is not None:
            found = self.assessment
            metadata |= {
                "direction": found.direction,
                "residual": found.residual,
                "predicted_loss": found.predicted_loss,
                "band_low": found.band_low,
                "band_high": found.band_high,
                "predicted_performance": _optional(found.predicted_performance),
                "extrapolated": found.extrapolated,
                "fit": found.fit,
                "fit_r_squared": found.fit_r_squared,
                "explanation": Markdown(found.explanation),
            }
        return metadata

    @classmethod
    def from_metadata(
        cls, values: Mapping[str, Any], *, passed: bool, summary: str | None = None, severity: str = "error"
    ) -> Self:
        """The result of a check evaluation: its metadata, and what Dagster keeps apart from it (whether it passed,
        its description and its severity)."""
        read = _Reader(values, "entropy_law_risk")
        point = assessment = None
        if read.has("method"):
            point = LawPoint(
                ratio=read.number("ratio"),
                loss=read.number("first_epoch_loss"),
                performance=None,
                method=read.text("method"),
                budget=read.integer("budget"),
                data_version=read.text("data_version"),
            )
        if read.has("direction"):
            assessment = Assessment(
                direction=read.text("direction"),
                residual=read.number("residual"),
                predicted_loss=read.number("predicted_loss"),
                band_low=read.number("band_low"),
                band_high=read.number("band_high"),
                predicted_performance=_present(read.number("predicted_performance")),
                extrapolated=bool(read.get("extrapolated", bool)),
                fit=read.text("fit"),
                fit_r_squared=read.number("fit_r_squared"),
                explanation=read.text("explanation"),
            )
        earlier = read.has("earlier_points")
        return cls(
            passed=passed,
            status=read.text("status"),
            point=point,
            earlier_points=read.integer("earlier_points") if earlier else None,
            earlier_versions=read.integer("earlier_versions") if earlier else None,
            assessment=assessment,
            summary=summary,
            severity=severity,
        )
