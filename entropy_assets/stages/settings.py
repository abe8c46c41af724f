"""Settings of the steps after selection: how each subset is trained, and how the entropy law is fitted and
checked. Declared once here, with their documentation: the Python API, the YAML component's schema and its
validation all come from these models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from entropy_assets.comparison import MAX_TRAINING_SEEDS, RANDOM, is_random
from entropy_assets.entropy_law import FORMS

Backend = Literal["builtin", "transformers", "pipes", "file"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Severity = Literal["error", "warn"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


class Settings(BaseModel):
    """Frozen, strict about unknown fields, and never echoing a value in an error (it may hold a credential).
    Lists (as YAML gives them) are kept as tuples, so that settings compare equal however they were written."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @field_validator("*", mode="after")
    @classmethod
    def _lists_as_tuples(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


class TrainingSettings(Settings):
    """How each subset is trained, and on what it is evaluated.

    Methods train at equal compute by default: every run takes ``steps`` optimizer steps, whatever its subset's
    size (the first-epoch loss L is the mean over the first pass; a small subset is seen more than once).

    The ``builtin`` backend checkpoints every ``builtin["checkpoint_every"]`` steps (50 by default), and a killed
    run of a partition resumes when it is run again on the same subset; ``transformers`` and ``pipes`` runs start
    over.
    """

    backend: Backend = Field(
        default="builtin",
        description="builtin (a small byte-level transformer, PyTorch), transformers (a local causal LM), pipes (your "
        "command, through Dagster Pipes) or file (metrics of a run made elsewhere).",
    )
    steps: int = Field(default=100, description="Optimizer steps of every run: equal compute across methods.")
    seed: int = Field(default=0, description="Seeds the trainer: its initialization and the order of batches.")
    seeds: int = Field(
        default=1,
        description="Train every subset at this many training seeds (seed, seed + 1, ...): L and Z are their means, "
        "and the verdict against random counts the spread between them.",
    )
    command: Sequence[str] = Field(
        default=(), description="For pipes: the command to launch, e.g. [python, examples/pipes_trainer.py]."
    )
    metrics_path: str = Field(
        default="",
        description="For file: a path with {method} and {budget} placeholders (and {seed}, with seeds above 1), to "
        "a .json or .csv.",
    )
    eval_samples: int = Field(
        default=100,
        description="Samples held out of selection to evaluate on: the smallest content hashes, stable as data grows.",
    )
    eval_paths: Sequence[str] = Field(default=(), description="An evaluation set of your own, instead.")
    score: str | None = Field(
        default=None, description="A reported score to use as performance Z; the evaluation loss when unset."
    )
    builtin: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the built-in trainer's settings (BuiltinTrainerConfig)."
    )
    model: str = Field(default="", description="For transformers: a local model folder (or a hub name).")
    transformers: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of TransformersTrainerConfig (context, batch_size, gradient_accumulation, "
        "learning_rate, dtype, lora, gradient_checkpointing, device, ...): docs/gpu_training.md.",
    )
    preference_loss: Literal["dpo", "prompt_chosen"] = Field(
        default="dpo",
        description="For preference pairs with transformers: dpo (through TRL) or prompt_chosen (causal LM).",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingSettings:
        if self.steps <= 0:
            raise ValueError(f"training steps must be positive, got {self.steps}")
        if self.backend == "pipes" and not self.command:
            raise ValueError("training backend 'pipes' needs a command")
        if self.backend == "transformers" and not self.model:
            raise ValueError("training backend 'transformers' needs a model (a local folder or a hub name)")
        if self.backend == "file" and not self.metrics_path:
            raise ValueError("training backend 'file' needs metrics_path (with {method} and {budget})")
        if not 1 <= self.seeds <= MAX_TRAINING_SEEDS:
            raise ValueError(f"training seeds must be 1..{MAX_TRAINING_SEEDS}, got {self.seeds}")
        if self.backend == "file" and self.seeds > 1 and "{seed}" not in self.metrics_path:
            raise ValueError("training backend 'file' with seeds above 1 needs {seed} in metrics_path")
        if self.eval_samples < 0:
            raise ValueError(f"eval_samples must be >= 0, got {self.eval_samples}")
        return self

    @property
    def seed_values(self) -> tuple[int, ...]:
        """The training seeds every subset is trained at."""
        return tuple(range(self.seed, self.seed + self.seeds))

    @property
    def holdout(self) -> int:
        """How many pool samples are kept out of selection for evaluation."""
        return 0 if self.eval_paths else self.eval_samples


class LawSettings(Settings):
    """How the law is fitted and how strictly a new data version is checked against it."""

    level: float = Field(
        default=0.95,
        description="Confidence level of parameter intervals and of the prediction band the risk check uses.",
    )
    forms: Sequence[str] = Field(
        default=tuple(FORMS), description="Forms of L(R) and Z(R) compared by leave-one-out error."
    )
    methods: Sequence[str] = Field(
        default=(),
        description="Methods whose runs enter the fit and are checked; all when empty. Runs of other methods are "
        "plotted hollow.",
    )
    severity: Severity = Field(
        default="error",
        description="Severity of a failed risk check: error (with blocking, stops downstream assets) or warn.",
    )
    blocking: bool = Field(
        default=True,
        description="Whether a failed check (at error severity) keeps assets downstream of training_run from running.",
    )
    accepted_versions: Sequence[str] = Field(
        default=(),
        description="Raw data versions (or their first 7+ characters) a person has reviewed and accepted: their "
        "check passes, and says so.",
    )

    @model_validator(mode="after")
    def _check(self) -> LawSettings:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"law level must be between 0 and 1, got {self.level}")
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown or not self.forms:
            raise ValueError(f"law forms {unknown or '[]'} not in {', '.join(FORMS)}")
        short = [v for v in self.accepted_versions if len(v) < 7]
        if short:
            raise ValueError(f"accepted_versions {short} are too short to be unambiguous: give at least 7 characters")
        return self

    def includes(self, method: str) -> bool:
        """Whether runs of ``method`` enter the fit and are checked (random's extra seeds count as random)."""
        return not self.methods or method in self.methods or (is_random(method) and RANDOM in self.methods)

    def accepts(self, data_version: str) -> bool:
        """Whether a person accepted ``data_version``."""
        return any(data_version.startswith(v) for v in self.accepted_versions)
