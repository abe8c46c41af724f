"""What training on a subset hands on (``training.train_on_subset``): L, Z, the run's cost and what it trained on."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from entropy_assets.entropy_law import LawPoint

from .metadata import FilePath, MetadataReader, embedded_png, finite_or_none, markdown_image, nan_if_none


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
            "eval_loss": nan_if_none(self.eval_loss),
            "performance": nan_if_none(self.performance),
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
            "performance_sd": nan_if_none(self.performance_sd),
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = MetadataReader(values, "training_run")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            method=read.text("method"),
            budget=read.integer("budget"),
            first_epoch_loss=read.number("first_epoch_loss"),
            eval_loss=finite_or_none(read.number("eval_loss")),
            performance=finite_or_none(read.number("performance")),
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
