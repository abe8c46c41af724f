"""What a training run reports, whoever ran it: per-step losses, the first-epoch loss L, the evaluation score Z.

The built-in trainer, an external trainer reporting through Dagster Pipes, and a run made elsewhere (a JSON or
CSV file) all end in a ``RunMetrics``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_METRICS_FILE_BYTES = 256 * 1024 * 1024
"""A metrics file larger than this is refused rather than read into memory: a run's metrics are far smaller."""

LOSS_KINDS: tuple[str, ...] = ("causal_lm", "causal_lm_prompt_chosen", "causal_lm_completion", "dpo")
"""What L measures: next-token loss on the text; on prompt plus chosen response (preference pairs); on completions
only (their prompts not predicted); or DPO."""


class MetricsError(ValueError):
    """Metrics that are missing, malformed or not finite; the message names the file or field."""


@dataclass(frozen=True)
class RunMetrics:
    """One training run's results. ``first_epoch_loss`` is the paper's L; ``eval_loss`` the default Z."""

    first_epoch_loss: float
    eval_loss: float | None = None
    step_losses: Sequence[float] = ()
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    loss_kind: str = "causal_lm"
    scores: Mapping[str, float] = field(default_factory=dict)
    """Further evaluation scores (benchmarks); ``performance`` picks one as Z."""

    def __post_init__(self) -> None:
        if self.loss_kind not in LOSS_KINDS:
            raise MetricsError(f"loss_kind must be one of {', '.join(LOSS_KINDS)}, got {self.loss_kind!r}")
        for name, value in (("first_epoch_loss", self.first_epoch_loss), ("eval_loss", self.eval_loss)):
            if value is not None and not math.isfinite(value):
                raise MetricsError(f"{name} must be a finite number, got {value!r}")
        if any(not math.isfinite(v) for v in self.step_losses):
            raise MetricsError("step_losses must all be finite numbers")

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def performance(self, score: str | None = None) -> float | None:
        """Z: the named score, or the evaluation loss when no score is named."""
        if score is None:
            return self.eval_loss
        if score not in self.scores:
            raise MetricsError(f"no score {score!r} in this run; it has {sorted(self.scores) or 'none'}")
        return self.scores[score]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["step_losses"] = list(self.step_losses)
        data["scores"] = dict(self.scores)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "metrics") -> RunMetrics:
        """Build from a mapping, with errors that name ``where`` and the field."""
        if not isinstance(data, Mapping):
            raise MetricsError(f"{where}: expected an object of metrics, got {type(data).__name__}")
        if "first_epoch_loss" not in data:
            raise MetricsError(f"{where}: field 'first_epoch_loss' is missing")
        scores = data.get("scores") or {}
        if not isinstance(scores, Mapping):
            raise MetricsError(f"{where}: field 'scores' must be an object of name -> number")
        step_losses = data.get("step_losses") or ()
        if not isinstance(step_losses, list | tuple):
            raise MetricsError(f"{where}: field 'step_losses' must be a list of numbers")
        try:
            return cls(
                first_epoch_loss=float(data["first_epoch_loss"]),
                eval_loss=None if data.get("eval_loss") is None else float(data["eval_loss"]),
                step_losses=tuple(float(v) for v in step_losses),
                steps=int(data.get("steps") or len(step_losses)),
                tokens=int(data.get("tokens") or 0),
                seconds=float(data.get("seconds") or 0.0),
                loss_kind=str(data.get("loss_kind") or "causal_lm"),
                scores={str(k): float(v) for k, v in scores.items()},
            )
        except (TypeError, ValueError, OverflowError) as exc:
            raise MetricsError(f"{where}: {exc}") from exc


def load_metrics_file(path: str | os.PathLike[str]) -> RunMetrics:
    """Metrics of a run made elsewhere.

    JSON: an object with the ``RunMetrics`` fields. CSV: one row per step with a ``loss`` column (and optionally
    ``step``); the first-epoch loss is their mean unless a ``first_epoch_loss`` column says otherwise, and an
    ``eval_loss`` column's last non-empty value is Z.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricsError(f"{path}: no such metrics file")
    if path.suffix not in (".json", ".csv"):
        raise MetricsError(f"{path}: metrics files must be .json or .csv")
    text = _read_text(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetricsError(f"{path}: not valid JSON ({exc})") from exc
        except (ValueError, RecursionError) as exc:  # numbers over 4300 digits, nesting past the recursion limit
            raise MetricsError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict):
            raise MetricsError(f"{path}: expected a JSON object of metrics")
        return RunMetrics.from_dict(data, str(path))
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise MetricsError(f"{path}: not a readable CSV ({exc})") from exc
    if not rows or "loss" not in rows[0]:
        raise MetricsError(f"{path}: expected a CSV with a 'loss' column and one row per step")
    losses: list[float] = []
    for number, row in enumerate(rows, start=1):
        try:
            losses.append(float(row["loss"]))
        except (TypeError, ValueError) as exc:
            raise MetricsError(f"{path} data row {number}: 'loss' must be a number, got {row['loss']!r}") from exc
    first = [r.get("first_epoch_loss") for r in rows if r.get("first_epoch_loss")]
    evals = [r.get("eval_loss") for r in rows if r.get("eval_loss")]
    return RunMetrics.from_dict(
        {
            "first_epoch_loss": first[-1] if first else sum(losses) / len(losses),
            "eval_loss": evals[-1] if evals else None,
            "step_losses": losses,
            "steps": len(losses),
        },
        str(path),
    )


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM dropped), with an unreadable, vanished, binary or oversized file as a
    ``MetricsError``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_METRICS_FILE_BYTES + 1)
    except OSError as exc:
        raise MetricsError(f"{path}: cannot read the metrics file ({exc.strerror or exc})") from exc
    if len(data) > MAX_METRICS_FILE_BYTES:
        raise MetricsError(f"{path}: larger than {MAX_METRICS_FILE_BYTES:,} bytes; not a metrics file")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise MetricsError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
