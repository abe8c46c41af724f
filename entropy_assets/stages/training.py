"""Subset to training run: the built-in trainer, a transformers model, an external trainer (through a launcher the
caller provides, Dagster Pipes in the plugin), or metrics of a run made elsewhere; L, Z and the loss curve are
stored under the subset version and the run.

Built-in runs checkpoint beside their results, named by the subset version and the settings that shape the run,
and a killed run resumes when it is run again on the same subset; the other backends start over.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from entropy_assets.entropy_law import law_ratio
from entropy_assets.plots import loss_curve_png
from entropy_assets.sources import SourceColumns
from entropy_assets.storage import Storage
from entropy_assets.training.examples import TrainingExample
from entropy_assets.training.metrics import MetricsError, RunMetrics, load_metrics_file
from entropy_assets.training.pipes import FINISH_MESSAGE, STEP_MESSAGE
from entropy_assets.versions import location_hash, settings_hash, subset_content_version

from .holdout import evaluation_frame, evaluation_version
from .pool_reads import rows_with
from .settings import TrainingSettings
from .subset import ROWS_SUFFIX
from .subset_result import SubsetResult
from .training_result import TrainingResult
from .workspace import Workspace

if TYPE_CHECKING:
    from entropy_assets.training.builtin import BuiltinTrainerConfig

Launcher = Callable[[Sequence[str], Mapping[str, Any]], Sequence[Any]]
"""Runs an external trainer's command with extras (paths of the texts, method, budget, steps, seed) and returns the
messages it reported: Dagster Pipes in the plugin."""


def train_on_subset(
    workspace: Workspace,
    subset: SubsetResult,
    method: str,
    budget: int,
    training: TrainingSettings,
    *,
    run_id: str,
    launch: Launcher | None = None,
    columns: SourceColumns | None = None,
) -> TrainingResult:
    """Train on ``subset`` (selected by ``method`` at ``budget``) at each of ``training``'s seeds and store the
    run's metrics and loss curve as ``<subset version>.<run id>.*``: nothing is overwritten. L and Z are the means
    over the seeds, each seed's kept beside them. Preference pairs train on prompt + chosen, or with DPO on the
    transformers backend. ``columns`` are the column mappings the pool was read with: the transformers and Pipes
    backends get each record's prompt and completion apart through them."""
    storage, log = workspace.storage, workspace.log
    columns = columns or SourceColumns()
    frame = subset_rows(storage, subset)
    train_examples, loss_kind = training_examples(frame, columns)
    train_texts = [example.text for example in train_examples]
    content_version = subset_content_version(frame["content_hash"].to_list())
    if training.backend == "builtin":  # it reads the texts alone: a subset of long samples is GBs held three times
        frame, train_examples = frame.clear(), []
    evaluation = evaluation_frame(storage, subset.pool_file, training, columns)
    eval_examples = evaluation_examples(evaluation, columns)
    eval_texts = [example.text for example in eval_examples]
    folder = workspace.folder("training_run", f"{method}_{budget}")
    runs: list[RunMetrics] = []
    checkpoints: list[Path] = []
    resumed_from = 0
    for seed in training.seed_values:
        seeded = training.model_copy(update={"seed": seed})
        if len(training.seed_values) > 1:
            log.info(f"training seed {seed} ({len(runs) + 1} of {training.seeds})")
        if training.backend == "transformers" and loss_kind != "causal_lm" and training.preference_loss == "dpo":
            metrics = _train_dpo(log, seeded, frame, evaluation, columns)
        elif training.backend == "builtin":
            checkpoint = checkpoint_path(storage, folder, subset.version, seeded, loss_kind, log)
            checkpoints.append(checkpoint)
            metrics, resumed = _train_builtin(log, seeded, train_texts, eval_texts, loss_kind, checkpoint)
            resumed_from = resumed_from or resumed
        elif training.backend == "transformers":
            metrics = _train_transformers(log, seeded, train_examples, eval_examples, loss_kind)
        elif training.backend == "pipes":
            if launch is None:
                raise ValueError("training backend 'pipes' needs a launcher for its command")
            metrics = _train_pipes(launch, seeded, train_examples, eval_examples, method, budget)
        else:
            metrics = load_metrics_file(training.metrics_path.format(method=method, budget=budget, seed=seed))
        runs.append(metrics)
    first = runs[0]
    title = f"{method}, budget {budget}: training loss" + (f" (seed {training.seed})" if len(runs) > 1 else "")
    curve = loss_curve_png(first.step_losses, title)
    stem = f"{subset.version}.{run_id[:8]}"
    storage.write_bytes(curve, *folder, f"{stem}.loss_curve.png")
    per_seed = [{"seed": seed, **m.to_dict()} for seed, m in zip(training.seed_values, runs, strict=True)]
    stored = {**first.to_dict(), "seeds": per_seed}
    path = storage.write_bytes(json.dumps(stored).encode("utf-8"), *folder, f"{stem}.json")
    if checkpoints:  # only now that the results are stored
        _remove_checkpoints(log, checkpoints)
    losses = tuple(m.first_epoch_loss for m in runs)
    performances = [m.performance(training.score) for m in runs]
    evals = [m.eval_loss for m in runs]
    seconds = sum(m.seconds for m in runs)
    return TrainingResult(
        path=str(path),
        file=storage.relative(path),
        method=method,
        budget=budget,
        first_epoch_loss=statistics.fmean(losses),
        eval_loss=_mean(evals),
        performance=_mean(performances),
        performance_measure=training.score or "eval_loss (lower is better)",
        loss_kind=first.loss_kind,
        steps=first.steps,
        tokens=first.tokens,
        seconds=round(seconds, 3),
        tokens_per_second=round(sum(m.tokens for m in runs) / seconds if seconds > 0 else 0.0, 1),
        subset_ratio_zlib9=round(law_ratio(train_texts), 4),
        subset_samples=len(train_texts),
        subset_version=content_version,
        selected_subset_version=subset.version,
        subset_file=subset.file,
        pool_file=subset.pool_file,
        pool_version=subset.pool_version,
        backend=training.backend,
        scores=dict(first.scores),
        resumed_from_step=resumed_from,
        loss_curve=curve,
        seeds=training.seed_values,
        first_epoch_losses=losses if len(runs) > 1 else (),
        performances=tuple(p for p in performances if p is not None) if len(runs) > 1 else (),
        eval_version=evaluation_version(evaluation),
        eval_samples=evaluation.height,
    )


def subset_rows(storage: Storage, subset: SubsetResult) -> pl.DataFrame:
    """The subset's rows whole, in the order chosen: from the file stored beside it (``ROWS_SUFFIX``), or, for a
    subset stored before those files, read from its pool by id (never the whole pool)."""
    chosen = storage.read_parquet(subset.file)
    stored = subset.file.removesuffix(".parquet") + ROWS_SUFFIX
    if storage.exists(stored):
        rows = storage.read_parquet(stored)
    else:
        rows = rows_with(storage, subset.pool_file, "id", chosen["id"].to_list())
    return chosen.select("id", "rank").join(rows, on="id", how="left").sort("rank")


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of values every run reported; None when one did not."""
    return None if any(v is None for v in values) else statistics.fmean(v for v in values if v is not None)


def training_examples(subset: pl.DataFrame, columns: SourceColumns) -> tuple[list[TrainingExample], str]:
    """What a causal LM trains on, and which loss that makes L: the canonical text, except that preference pairs
    train on prompt + chosen; each with its prompt and completion apart where the record has them. ``columns``
    are the mappings the pool's records were read with."""
    loss_kind = "causal_lm_prompt_chosen" if "preference" in subset["format"].to_list() else "causal_lm"
    return _examples(subset, columns, preference_as_chosen=True), loss_kind


def evaluation_examples(evaluation: pl.DataFrame, columns: SourceColumns) -> list[TrainingExample]:
    """The evaluation samples' canonical text, with prompt and completion apart where the text is made of them (a
    preference pair's text, with both responses, is not)."""
    return _examples(evaluation, columns, preference_as_chosen=False)


def _examples(frame: pl.DataFrame, columns: SourceColumns, *, preference_as_chosen: bool) -> list[TrainingExample]:
    examples: list[TrainingExample] = []
    rows = zip(frame["text"], frame["record"], frame["format"], frame["source"], strict=True)
    for text, record, fmt, source in rows:
        read = columns.read(record, fmt, source)
        if fmt == "preference":
            if not preference_as_chosen:
                examples.append(TrainingExample(text))
                continue
            text = read.training_text()
        split = read.prompt_and_completion()
        whole = split is not None and text == f"{split[0]}\n{split[1]}"
        examples.append(TrainingExample(text, *split) if whole and split is not None else TrainingExample(text))
    return examples


def checkpoint_path(
    storage: Storage,
    folder: tuple[str, ...],
    subset_version: str,
    training: TrainingSettings,
    loss_kind: str,
    log: logging.Logger,
) -> Path:
    """Where a built-in run of this partition checkpoints: beside its results, named by the subset version and a
    hash of the settings that shape the run, so that only a rerun on the same subset resumes. A remote storage
    gets a folder of the local temporary directory instead (a rerun on the same machine resumes)."""
    config = {k: v for k, v in asdict(_builtin_config(training)).items() if k != "checkpoint_every"}
    described = {"config": config, "loss_kind": loss_kind, "eval": [list(training.eval_paths), training.holdout]}
    name = f"{subset_version}.{settings_hash(described)}.checkpoint.pt"
    target = storage.local_path(*folder, name)
    if target is not None:
        return target
    local = Path(tempfile.gettempdir(), "entropy_assets_checkpoints", location_hash(storage.base_path), *folder, name)
    log.info(f"storage {storage.base_path} is remote: the training checkpoint is kept locally at {local}")
    return local


def _remove_checkpoints(log: logging.Logger, checkpoints: Sequence[Path]) -> None:
    """Remove the finished run's checkpoints (one per training seed) and those that killed runs of the partition's
    older subsets left."""
    for path in sorted(checkpoints[0].parent.glob("*.checkpoint.pt")):
        path.unlink(missing_ok=True)
        if path not in checkpoints:
            log.info(f"removed the stale checkpoint {path.name} of an unfinished run on another subset")


def _pairs(frame: pl.DataFrame, columns: SourceColumns) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of the frame's preference records."""
    rows = frame.filter(pl.col("format") == "preference").select("record", "source")
    return [columns.read(record, "preference", source).preference_parts() for record, source in rows.iter_rows()]


def _trainer_settings(training: TrainingSettings, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Seed and steps (equal compute) from the training settings, then the trainer's own overrides."""
    return {"seed": training.seed, "max_steps": training.steps, **overrides}


def _builtin_config(training: TrainingSettings) -> BuiltinTrainerConfig:
    from entropy_assets.training.builtin import BuiltinTrainerConfig

    return BuiltinTrainerConfig(**_trainer_settings(training, training.builtin))


def _step_logger(log: logging.Logger) -> Callable[[int, float], None]:
    def report(step: int, loss: float) -> None:
        if step % 25 == 0:
            log.info(f"step {step}: loss {loss:.4f}")

    return report


def _train_builtin(
    log: logging.Logger,
    training: TrainingSettings,
    train_texts: list[str],
    eval_texts: list[str],
    loss_kind: str,
    checkpoint: Path,
) -> tuple[RunMetrics, int]:
    """The built-in trainer's run, resumed from ``checkpoint`` when a killed run of the same subset and settings
    left one; the metrics and the step it resumed from (0 when fresh). The checkpoint is kept for the caller."""
    from entropy_assets.training.builtin import train_builtin

    resumed: list[int] = []
    metrics = train_builtin(
        train_texts,
        eval_texts,
        _builtin_config(training),
        on_step=_step_logger(log),
        loss_kind=loss_kind,
        checkpoint=checkpoint,
        keep_checkpoint=True,
        on_resume=resumed.append,
        logger=log,
    )
    return metrics, resumed[0] if resumed else 0


def _train_transformers(
    log: logging.Logger,
    training: TrainingSettings,
    train: Sequence[TrainingExample],
    evaluation: Sequence[TrainingExample],
    loss_kind: str,
) -> RunMetrics:
    """Next-token training of a transformers model (torch and transformers are optional extras, imported only
    here), on completions only where ``completion_only_loss`` is set and a sample has its prompt apart. It is not
    checkpointed: a killed run starts over."""
    from entropy_assets.training.transformers_backend import TransformersTrainerConfig, train_transformers

    config = TransformersTrainerConfig(model=training.model, **_trainer_settings(training, training.transformers))
    return train_transformers(
        [example.text for example in train],
        [example.text for example in evaluation],
        config,
        on_step=_step_logger(log),
        loss_kind="causal_lm_completion" if config.completion_only_loss else loss_kind,
        train_prompts=[example.prompt for example in train],
        eval_prompts=[example.prompt for example in evaluation],
    )


def _train_dpo(
    log: logging.Logger,
    training: TrainingSettings,
    subset: pl.DataFrame,
    evaluation: pl.DataFrame,
    columns: SourceColumns,
) -> RunMetrics:
    from entropy_assets.training.transformers_backend import TransformersTrainerConfig, train_dpo

    config = TransformersTrainerConfig(model=training.model, **_trainer_settings(training, training.transformers))
    return train_dpo(_pairs(subset, columns), _pairs(evaluation, columns), config, on_step=_step_logger(log))


def _train_pipes(
    launch: Launcher,
    training: TrainingSettings,
    train: Sequence[TrainingExample],
    evaluation: Sequence[TrainingExample],
    method: str,
    budget: int,
) -> RunMetrics:
    """An external trainer's run: the samples go to it as JSON lines (``text``, and ``prompt`` and ``completion``
    where a record has them), its per-step losses and final metrics come back as messages."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {"train_path": Path(folder) / "train.jsonl", "eval_path": Path(folder) / "eval.jsonl"}
        for key, examples in (("train_path", train), ("eval_path", evaluation)):
            lines = (json.dumps(example.to_json()) + "\n" for example in examples)
            paths[key].write_text("".join(lines), encoding="utf-8")
        extras = {**{k: str(v) for k, v in paths.items()}, "method": method, "budget": budget}
        extras |= {"steps": training.steps, "seed": training.seed}
        messages = launch(list(training.command), extras)
    steps = [m for m in messages if isinstance(m, dict) and m.get("type") == STEP_MESSAGE]
    finished = [m for m in messages if isinstance(m, dict) and m.get("type") == FINISH_MESSAGE]
    if not finished:
        raise MetricsError(f"the trainer {list(training.command)} exited without reporting its final metrics")
    final = dict(finished[-1])
    final["step_losses"] = [m["loss"] for m in sorted(steps, key=lambda m: m["step"])]
    final["steps"] = len(steps)
    return RunMetrics.from_dict(final, f"the trainer {list(training.command)}")
