"""One sample as a trainer reads it: its text and, where its record has them, its prompt and completion apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingExample:
    """A sample to train on: ``text``, and where the record has them its ``prompt`` and ``completion`` (``text`` is
    the prompt, a newline and the completion), so that a trainer can take the loss on the completion only."""

    text: str
    prompt: str | None = None
    completion: str | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) != (self.completion is None):
            raise ValueError("a training example has both a prompt and a completion, or neither")
        if self.prompt is not None and self.text != f"{self.prompt}\n{self.completion}":
            raise ValueError("a training example's text must be its prompt, a newline and its completion")

    def to_json(self) -> dict[str, str]:
        """``{"text": ...}``, with ``prompt`` and ``completion`` where the sample has them."""
        if self.prompt is None or self.completion is None:
            return {"text": self.text}
        return {"text": self.text, "prompt": self.prompt, "completion": self.completion}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> TrainingExample:
        """The inverse of ``to_json``."""
        return cls(values["text"], values.get("prompt"), values.get("completion"))
