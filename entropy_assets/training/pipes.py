"""For external training scripts launched by the ``training_run`` asset through Dagster Pipes.

The script needs only ``dagster-pipes`` (not Dagster itself)::

    from entropy_assets.training.pipes import TrainingReporter

    with TrainingReporter() as report:
        texts = report.train_texts()          # the subset to train on (canonical text)
        # or report.train_examples(): each with "text", and "prompt" and "completion" where the record has them,
        # for a loss on completions only
        for step, loss in my_training_loop(texts):
            report.step(step, loss)
        report.finish(first_epoch_loss=..., eval_loss=..., tokens=..., scores={"mmlu": 0.41})

Per-step losses and the final metrics travel to the asset as Pipes custom messages; the asset turns them into
its materialization's metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

STEP_MESSAGE = "entropy_assets.step"
FINISH_MESSAGE = "entropy_assets.finish"


class TrainingReporter:
    """Reports a training run's losses back to the Dagster asset that launched this process."""

    def __init__(self) -> None:
        self._pipes = open_dagster_pipes()
        self._context: PipesContext = self._pipes.__enter__()
        self._finished = False

    def __enter__(self) -> TrainingReporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._pipes.__exit__(kind, error, tb)

    @property
    def extras(self) -> Mapping[str, Any]:
        """What the asset passed: ``train_path`` and ``eval_path`` (JSONL of ``{"text": ...}``, with ``prompt`` and
        ``completion`` where a record has them), method, budget."""
        return self._context.extras

    def train_texts(self) -> list[str]:
        """The subset's texts (canonical text; a preference pair's prompt and chosen response)."""
        return [example["text"] for example in self.train_examples()]

    def eval_texts(self) -> list[str]:
        return [example["text"] for example in self.eval_examples()]

    def train_examples(self) -> list[dict[str, str]]:
        """The subset's samples: each ``text``, and ``prompt`` and ``completion`` apart where the record has them
        (the text is the prompt, a newline and the completion), for a loss on completions only."""
        return _read_examples(self.extras["train_path"])

    def eval_examples(self) -> list[dict[str, str]]:
        return _read_examples(self.extras["eval_path"])

    def step(self, step: int, loss: float) -> None:
        """Report one optimizer step's training loss."""
        if not math.isfinite(loss):
            raise ValueError(f"step {step}: loss {loss!r} is not a finite number")
        self._context.report_custom_message({"type": STEP_MESSAGE, "step": int(step), "loss": float(loss)})

    def finish(
        self,
        *,
        first_epoch_loss: float,
        eval_loss: float | None = None,
        tokens: int = 0,
        seconds: float = 0.0,
        loss_kind: str = "causal_lm",
        scores: Mapping[str, float] | None = None,
    ) -> None:
        """Report the run's results: the first-epoch loss L, the evaluation loss, and any benchmark scores."""
        self._context.report_custom_message(
            {
                "type": FINISH_MESSAGE,
                "first_epoch_loss": float(first_epoch_loss),
                "eval_loss": None if eval_loss is None else float(eval_loss),
                "tokens": int(tokens),
                "seconds": float(seconds),
                "loss_kind": loss_kind,
                "scores": {str(k): float(v) for k, v in (scores or {}).items()},
            }
        )
        self._finished = True


def _read_examples(path: str) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
