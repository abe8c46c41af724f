"""The ``training_run`` asset: one training run per selected subset, by the built-in trainer, an external trainer
through Dagster Pipes, or metrics of a run made elsewhere (a JSON or CSV file)."""

import base64
import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from entropy_assets.compression import join_samples, make_compressor
from entropy_assets.plots import loss_curve_png
from entropy_assets.records import preference_parts, training_text
from entropy_assets.sources import load_pool
from entropy_assets.training.metrics import MetricsError, RunMetrics, load_metrics_file
from entropy_assets.training.pipes import FINISH_MESSAGE, STEP_MESSAGE

from .storage import EntropyStorage, latest_output

if TYPE_CHECKING:
    from entropy_assets.training.builtin import BuiltinTrainerConfig

BACKENDS: tuple[str, ...] = ("builtin", "transformers", "pipes", "file")


@dataclass(frozen=True)
class TrainingSettings:
    """How each subset is trained, and on what it is evaluated.

    Methods train at equal compute by default: every run takes ``steps`` optimizer steps, whatever its subset's
    size (the first-epoch loss L is the mean over the first pass; a small subset is seen more than once).

    The ``builtin`` backend checkpoints every ``builtin["checkpoint_every"]`` steps (50 by default), and a killed
    run of a partition resumes when it is run again on the same subset; ``transformers`` and ``pipes`` runs start
    over.
    """

    backend: str = "builtin"
    steps: int = 100
    seed: int = 0
    command: Sequence[str] = ()
    """For ``pipes``: the command to launch, e.g. ``["python", "examples/pipes_trainer.py"]``."""
    metrics_path: str = ""
    """For ``file``: a path with ``{method}`` and ``{budget}`` placeholders, to a .json or .csv of metrics."""
    eval_samples: int = 100
    """Samples held out of selection (the smallest content hashes: stable as data grows) to evaluate on."""
    eval_paths: Sequence[str] = ()
    """A user-given evaluation set instead of the held-out samples."""
    score: str | None = None
    """The reported score to use as performance Z; the evaluation loss when None."""
    builtin: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of ``BuiltinTrainerConfig`` fields."""
    model: str = ""
    """For ``transformers``: a local model folder (or a hub name where the network allows)."""
    transformers: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of ``TransformersTrainerConfig`` fields (context, batch_size, learning_rate, device, ...)."""
    preference_loss: str = "dpo"
    """For preference pairs with ``transformers``: ``dpo`` (through TRL) or ``prompt_chosen`` (causal LM)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"training backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.steps <= 0:
            raise ValueError(f"training steps must be positive, got {self.steps}")
        if self.backend == "pipes" and not self.command:
            raise ValueError("training backend 'pipes' needs a command")
        if self.backend == "transformers" and not self.model:
            raise ValueError("training backend 'transformers' needs a model (a local folder or a hub name)")
        if self.backend == "file" and not self.metrics_path:
            raise ValueError("training backend 'file' needs metrics_path (with {method} and {budget})")
        if self.preference_loss not in ("dpo", "prompt_chosen"):
            raise ValueError(f"preference_loss must be 'dpo' or 'prompt_chosen', got {self.preference_loss!r}")
        if self.eval_samples < 0:
            raise ValueError(f"eval_samples must be >= 0, got {self.eval_samples}")

    @property
    def holdout(self) -> int:
        """How many pool samples are kept out of selection for evaluation."""
        return 0 if self.eval_paths else self.eval_samples


def holdout_mask(frame: pl.DataFrame, count: int) -> pl.Series:
    """True for the evaluation samples: those whose content hash is among the ``count`` smallest distinct ones.

    Every copy of a held-out content is held out, so that no duplicate of an evaluation sample is trained on.
    """
    if count <= 0 or frame.is_empty():
        return pl.Series("holdout", [False] * frame.height)
    hashes = frame["content_hash"].unique().sort().head(count)
    return frame["content_hash"].is_in(hashes.implode()).alias("holdout")


def build_training_asset(
    settings: Any, training: TrainingSettings, subset_key: dg.AssetKey, common: dict[str, Any]
) -> dg.AssetsDefinition:
    """The ``training_run`` asset of a pipeline (``settings`` is its ``SelectionPipeline``)."""
    name = settings.name

    @dg.asset(
        name="training_run",
        deps=[subset_key],
        partitions_def=settings.partitions,
        code_version="training-run-1",
        kinds={"pytorch"} if training.backend in ("builtin", "transformers") else {"python"},
        description=f"A training run on each selected subset ({training.backend} backend, {training.steps} steps "
        "each): per-step loss, first-epoch loss L, evaluation loss and the performance Z used by the entropy law.",
        **common,
    )
    def training_run(
        context: AssetExecutionContext,
        entropy_storage: EntropyStorage,
        pipes_subprocess_client: dg.PipesSubprocessClient,
    ) -> dg.MaterializeResult:
        method, budget = settings.partition(context.partition_key)
        selected = latest_output(context.instance, subset_key, context.partition_key)
        pool = entropy_storage.read_parquet(selected["pool_file"])
        chosen = entropy_storage.read_parquet(selected["file"])
        subset = chosen.select("id", "rank").join(pool, on="id", how="left").sort("rank")
        train_texts, loss_kind = _training_texts(subset)
        eval_texts = _eval_texts(pool, training)
        folder = (name, "training_run", f"{method}_{budget}")
        checkpoint, resumed_from = None, 0
        if training.backend == "transformers" and loss_kind != "causal_lm" and training.preference_loss == "dpo":
            metrics = _train_dpo(context, training, subset, _eval_frame(pool, training))
        elif training.backend == "builtin":
            checkpoint = _checkpoint_path(
                context, entropy_storage, folder, str(selected["version"]), training, loss_kind
            )
            metrics, resumed_from = _train_builtin(context, training, train_texts, eval_texts, loss_kind, checkpoint)
        elif training.backend == "transformers":
            metrics = _train_transformers(context, training, train_texts, eval_texts, loss_kind)
        elif training.backend == "pipes":
            metrics = _train_pipes(context, pipes_subprocess_client, training, train_texts, eval_texts, method, budget)
        else:
            metrics = load_metrics_file(training.metrics_path.format(method=method, budget=budget))
        ratio = make_compressor("zlib", 9).ratio(join_samples([t.encode("utf-8") for t in train_texts]))
        curve = loss_curve_png(metrics.step_losses, f"{method}, budget {budget}: training loss")
        # Each run is kept under the subset version it trained on and its own run id: nothing is overwritten.
        stem = f"{selected['version']}.{context.run_id[:8]}"
        entropy_storage.write_bytes(curve, *folder, f"{stem}.loss_curve.png")
        path = entropy_storage.write_bytes(json.dumps(metrics.to_dict()).encode("utf-8"), *folder, f"{stem}.json")
        if checkpoint is not None:  # only now that the results are stored
            _remove_checkpoints(context, checkpoint)
        performance = metrics.performance(training.score)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "file": entropy_storage.relative(path),
                "method": method,
                "budget": budget,
                "first_epoch_loss": metrics.first_epoch_loss,
                "eval_loss": metrics.eval_loss if metrics.eval_loss is not None else float("nan"),
                "performance": performance if performance is not None else float("nan"),
                "performance_measure": training.score or "eval_loss (lower is better)",
                "loss_kind": metrics.loss_kind,
                "steps": metrics.steps,
                "tokens": metrics.tokens,
                "seconds": round(metrics.seconds, 3),
                "resumed_from_step": resumed_from,
                "tokens_per_second": round(metrics.tokens_per_second, 1),
                "subset_compression_ratio_zlib9": round(ratio, 4),
                "subset_samples": len(train_texts),
                "subset_version": _subset_version(subset),
                "selected_subset_version": str(selected["version"]),
                "subset_file": str(selected["file"]),
                "pool_file": str(selected["pool_file"]),
                "pool_version": str(selected["pool_version"]),
                "raw_data_version": str(selected["pool_version"]),  # a pool is named by the raw data it read
                "backend": training.backend,
                "scores": dg.MetadataValue.json(dict(metrics.scores)),
                "loss_curve": dg.MetadataValue.md(
                    f"![training loss](data:image/png;base64,{base64.b64encode(curve).decode()})"
                ),
            }
        )

    return training_run


def _training_texts(subset: pl.DataFrame) -> tuple[list[str], str]:
    """What a causal LM trains on, and which loss that makes L: preference pairs train on prompt + chosen."""
    formats = subset["format"].to_list()
    if "preference" not in formats:
        return subset["text"].to_list(), "causal_lm"
    records = [json.loads(r) for r in subset["record"].to_list()]
    return [training_text(r, f) for r, f in zip(records, formats, strict=True)], "causal_lm_prompt_chosen"


def _eval_frame(pool: pl.DataFrame, training: TrainingSettings) -> pl.DataFrame:
    if training.eval_paths:
        return load_pool(list(training.eval_paths)).frame
    return pool.filter(holdout_mask(pool, training.holdout))


def _eval_texts(pool: pl.DataFrame, training: TrainingSettings) -> list[str]:
    return _eval_frame(pool, training)["text"].to_list()


def _pairs(frame: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of the frame's preference records."""
    rows = frame.filter(pl.col("format") == "preference")["record"].to_list()
    return [preference_parts(json.loads(record)) for record in rows]


def _train_dpo(
    context: AssetExecutionContext, training: TrainingSettings, subset: pl.DataFrame, evaluation: pl.DataFrame
) -> RunMetrics:
    from entropy_assets.training.transformers_backend import TransformersTrainerConfig, train_dpo

    config = TransformersTrainerConfig(model=training.model, **_trainer_settings(training, training.transformers))
    return train_dpo(_pairs(subset), _pairs(evaluation), config, on_step=_step_logger(context))


def _subset_version(subset: pl.DataFrame) -> str:
    """A version of the trained-on subset from its samples' content, in order."""
    return hashlib.sha256("\n".join(subset["content_hash"].to_list()).encode()).hexdigest()[:24]


def _train_transformers(
    context: AssetExecutionContext,
    training: TrainingSettings,
    train_texts: list[str],
    eval_texts: list[str],
    loss_kind: str,
) -> RunMetrics:
    """Next-token training of a transformers model (torch and transformers are optional extras, imported only
    here). It is not checkpointed: a killed run starts over."""
    from entropy_assets.training.transformers_backend import TransformersTrainerConfig, train_transformers

    settings = _trainer_settings(training, training.transformers)
    model_config = TransformersTrainerConfig(model=training.model, **settings)
    return train_transformers(train_texts, eval_texts, model_config, on_step=_step_logger(context), loss_kind=loss_kind)


def _train_builtin(
    context: AssetExecutionContext,
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
        on_step=_step_logger(context),
        loss_kind=loss_kind,
        checkpoint=checkpoint,
        keep_checkpoint=True,
        on_resume=resumed.append,
        logger=context.log,
    )
    return metrics, resumed[0] if resumed else 0


def _builtin_config(training: TrainingSettings) -> "BuiltinTrainerConfig":
    from entropy_assets.training.builtin import BuiltinTrainerConfig

    return BuiltinTrainerConfig(**_trainer_settings(training, training.builtin))


def _checkpoint_path(
    context: AssetExecutionContext,
    storage: EntropyStorage,
    folder: tuple[str, ...],
    subset_version: str,
    training: TrainingSettings,
    loss_kind: str,
) -> Path:
    """Where a built-in run of this partition checkpoints: beside its results, named by the subset version and a
    hash of the settings that shape the run, so that only a rerun on the same subset resumes. A remote storage
    gets a folder of the local temporary directory instead (a rerun on the same machine resumes)."""
    settings = {k: v for k, v in asdict(_builtin_config(training)).items() if k != "checkpoint_every"}
    described = {"config": settings, "loss_kind": loss_kind, "eval": [list(training.eval_paths), training.holdout]}
    key = hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    name = f"{subset_version}.{key}.checkpoint.pt"
    target = storage.local_path(*folder, name)
    if target is not None:
        return target
    base = hashlib.sha256(storage.base_path.encode("utf-8")).hexdigest()[:12]
    local = Path(tempfile.gettempdir(), "entropy_assets_checkpoints", base, *folder, name)
    context.log.info(f"storage {storage.base_path} is remote: the training checkpoint is kept locally at {local}")
    return local


def _remove_checkpoints(context: AssetExecutionContext, checkpoint: Path) -> None:
    """Remove the finished run's checkpoint and those that killed runs of the partition's older subsets left."""
    for path in sorted(checkpoint.parent.glob("*.checkpoint.pt")):
        path.unlink(missing_ok=True)
        if path != checkpoint:
            context.log.info(f"removed the stale checkpoint {path.name} of an unfinished run on another subset")


def _trainer_settings(training: TrainingSettings, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Seed and steps (equal compute) from the training settings, then the trainer's own overrides."""
    return {"seed": training.seed, "max_steps": training.steps, **overrides}


def _step_logger(context: AssetExecutionContext) -> Callable[[int, float], None]:
    def log(step: int, loss: float) -> None:
        if step % 25 == 0:
            context.log.info(f"step {step}: loss {loss:.4f}")

    return log


def _train_pipes(
    context: AssetExecutionContext,
    client: dg.PipesSubprocessClient,
    training: TrainingSettings,
    train_texts: list[str],
    eval_texts: list[str],
    method: str,
    budget: int,
) -> RunMetrics:
    with tempfile.TemporaryDirectory() as folder:
        paths = {"train_path": Path(folder) / "train.jsonl", "eval_path": Path(folder) / "eval.jsonl"}
        for key, texts in (("train_path", train_texts), ("eval_path", eval_texts)):
            paths[key].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        extras = {**{k: str(v) for k, v in paths.items()}, "method": method, "budget": budget}
        extras |= {"steps": training.steps, "seed": training.seed}
        invocation = client.run(context=context, command=list(training.command), extras=extras)
        messages = invocation.get_custom_messages()
    steps = [m for m in messages if isinstance(m, dict) and m.get("type") == STEP_MESSAGE]
    finished = [m for m in messages if isinstance(m, dict) and m.get("type") == FINISH_MESSAGE]
    if not finished:
        raise MetricsError(f"the trainer {list(training.command)} exited without reporting its final metrics")
    final = dict(finished[-1])
    final["step_losses"] = [m["loss"] for m in sorted(steps, key=lambda m: m["step"])]
    final["steps"] = len(steps)
    return RunMetrics.from_dict(final, f"the trainer {list(training.command)}")
