"""What scoring a pool, or one of its shards, hands on (``scores.score_pool``, ``scores.score_shard``), with the
quality gate's exclusions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from entropy_assets.quality import share

from .metadata import ColumnSchema, FilePath, MetadataReader, Table


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
    columns: ColumnSchema | None = None
    """The scores file's columns; None for scores recorded before they were."""

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
            **({} if self.columns is None else {"dagster/column_schema": self.columns}),
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
        read = MetadataReader(values, "compression_scores")
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
            columns=read.get("dagster/column_schema", ColumnSchema) if read.has("dagster/column_schema") else None,
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
