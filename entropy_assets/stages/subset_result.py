"""What selecting a subset hands on (``subset.select_subset``): its files, R, and its churn and composition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from entropy_assets.composition import FacetMix

from .churn import Churn
from .metadata import ColumnSchema, FilePath, MetadataReader, Table, embedded_png, markdown_image

COMPOSITION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("facet", "string"),
    ("value", "string"),
    ("pool share", "float"),
    ("subset share", "float"),
    ("difference", "float"),
)
"""The columns of a subset's ``composition`` table: a row per facet and value; a share is blank where the value is
absent from that side, the difference is the subset's share less the pool's."""

CHURN_COLUMNS: tuple[tuple[str, str], ...] = (("change", "string"), ("reason", "string"), ("samples", "int"))
"""The columns of a subset's ``churn`` table: how many samples changed in each way, and why."""


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
    columns: ColumnSchema | None = None
    """The provenance file's columns (``path``); None for subsets recorded before they were."""
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
            **({} if self.columns is None else {"dagster/column_schema": self.columns}),
            "size": self.size,
            "bytes": self.bytes,
            "compression_ratio_zlib9": self.ratio_zlib9,
            "ratio_histogram": markdown_image(self.histogram, "per-sample ratios"),
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
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = MetadataReader(values, "selected_subset")
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
            columns=read.get("dagster/column_schema", ColumnSchema) if read.has("dagster/column_schema") else None,
            histogram=embedded_png(read.text("ratio_histogram")),
        )


def _churn_metadata(churn: Churn | None) -> dict[str, Any]:
    """A churn as numbers Dagster charts across materializations, and its reasons as a table."""
    if churn is None:
        return {}
    counts = {"churn_kept": churn.kept, "churn_added": churn.added, "churn_removed": churn.removed}
    rows = tuple(
        {"change": change, "reason": reason, "samples": n}
        for key, n in churn.by_reason.items()
        for change, _, reason in [key.partition(": ")]  # "added: new data"
    )
    return {**counts, "churn": Table(CHURN_COLUMNS, rows)}


def _composition_metadata(mixes: Mapping[str, FacetMix] | None) -> dict[str, Any]:
    """Each facet's distance from the pool's mix as a number Dagster charts (``composition_tvd_<facet>``), and the
    mixes themselves as one table (``composition``: per facet and value, the pool's and the subset's shares, exact
    as measured: 4 decimals)."""
    if mixes is None:
        return {}
    distances = {f"composition_tvd_{facet}": mixed.distance for facet, mixed in mixes.items()}
    rows = tuple(
        {
            "facet": facet,
            "value": value,
            "pool share": mixed.pool.get(value),
            "subset share": mixed.subset.get(value),
            "difference": round(mixed.subset.get(value, 0.0) - mixed.pool.get(value, 0.0), 4),
        }
        for facet, mixed in mixes.items()
        for value in dict.fromkeys([*mixed.pool, *mixed.subset])
    )
    return {**distances, "composition": Table(COMPOSITION_COLUMNS, rows)}


def _read_composition(read: MetadataReader) -> dict[str, FacetMix] | None:
    if not read.has("composition"):  # subsets recorded before composition was measured
        return None
    if read.holds("composition", dict):  # recorded before it was a table: per facet, the pool's and subset's shares
        return {
            facet: FacetMix(dict(mixes["pool"]), dict(mixes["subset"]), read.number(f"composition_tvd_{facet}"))
            for facet, mixes in read.mapping("composition").items()
        }
    rows = read.table("composition").rows

    def shares(facet: str, side: str) -> dict[str, float]:
        return {row["value"]: row[side] for row in rows if row["facet"] == facet and row[side] is not None}

    return {
        facet: FacetMix(
            shares(facet, "pool share"), shares(facet, "subset share"), read.number(f"composition_tvd_{facet}")
        )
        for facet in dict.fromkeys(row["facet"] for row in rows)
    }


def _read_churn(read: MetadataReader) -> Churn | None:
    if not read.has("churn_kept"):
        return None
    counts = (read.integer("churn_kept"), read.integer("churn_added"), read.integer("churn_removed"))
    if read.holds("churn", dict):  # recorded before it was a table: count by "change: reason"
        return Churn(*counts, by_reason={reason: int(n) for reason, n in read.mapping("churn").items()})
    rows = read.table("churn").rows
    return Churn(*counts, by_reason={f"{row['change']}: {row['reason']}": int(row["samples"]) for row in rows})
