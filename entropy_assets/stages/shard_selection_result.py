"""What selecting within one shard hands on to hierarchical ZIP's final pass (``shard_selection.select_shard``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from .metadata import FilePath, MetadataReader


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
        read = MetadataReader(values, "shard_selection")
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
