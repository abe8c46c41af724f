"""Fine-tune a Hugging Face causal language model on a subset, recording the same metrics as the built-in trainer.

The model and its tokenizer load from a local folder (or a hub name where the network allows); training runs on
the GPU when there is one. ``transformers`` and ``torch`` are optional extras (``pip install
entropy-assets[transformers]``).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from entropy_assets.training.metrics import RunMetrics


@dataclass(frozen=True)
class TransformersTrainerConfig:
    """Settings of a fine-tuning run; ``model`` is a local folder or a hub name."""

    model: str
    seed: int = 0
    context: int = 512
    batch_size: int = 4
    learning_rate: float = 5e-5
    max_steps: int | None = None
    epochs: int = 1
    eval_sequences: int = 64
    device: str = "auto"
    """``auto`` picks CUDA when available, else the CPU."""

    def __post_init__(self) -> None:
        for name in ("context", "batch_size", "epochs", "eval_sequences"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TransformersTrainerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"TransformersTrainerConfig.max_steps must be positive, got {self.max_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"TransformersTrainerConfig.learning_rate must be positive, got {self.learning_rate}")


def _sequences(tokenizer: object, texts: Sequence[str], context: int) -> torch.Tensor:
    """Texts tokenized, each ended by the end-of-text token, joined and cut into ``context + 1`` windows."""
    eos = tokenizer.eos_token_id  # type: ignore[attr-defined]
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]
        if eos is not None:
            ids.append(eos)
    count = (len(ids) - 1) // context
    if count <= 0:
        raise ValueError(f"texts are too short: one sequence needs {context + 1} tokens, got {len(ids)}")
    stream = torch.tensor(ids[: count * context + 1], dtype=torch.long)
    return torch.stack([stream[i * context : i * context + context + 1] for i in range(count)])


def train_transformers(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    config: TransformersTrainerConfig,
    on_step: Callable[[int, float], None] | None = None,
    loss_kind: str = "causal_lm",
) -> RunMetrics:
    """Fine-tune ``config.model`` on ``train_texts``; L is the mean loss over the first epoch's steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if config.device == "auto" else config.device)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    model = AutoModelForCausalLM.from_pretrained(config.model).to(device)
    train = _sequences(tokenizer, train_texts, config.context)
    per_epoch = math.ceil(len(train) / config.batch_size)
    total = config.max_steps or per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    tokens = 0
    model.train()
    started = time.perf_counter()
    order = torch.randperm(len(train), generator=generator)
    for step in range(1, total + 1):
        position = (step - 1) % per_epoch
        if step > 1 and position == 0:
            order = torch.randperm(len(train), generator=generator)
        batch = train[order[position * config.batch_size : (position + 1) * config.batch_size]].to(device)
        output = model(input_ids=batch, labels=batch)  # the model shifts labels by one itself
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        losses.append(float(output.loss.detach()))
        tokens += int(batch[:, 1:].numel())
        if on_step is not None:
            on_step(step, losses[-1])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return RunMetrics(
        first_epoch_loss=sum(losses[:per_epoch]) / len(losses[:per_epoch]),
        eval_loss=_evaluate(model, tokenizer, eval_texts, config, device),
        step_losses=tuple(losses),
        steps=len(losses),
        tokens=tokens,
        seconds=seconds,
        loss_kind=loss_kind,
    )


def _evaluate(
    model: torch.nn.Module, tokenizer: object, texts: Sequence[str], config: TransformersTrainerConfig, device: object
) -> float | None:
    if not texts:
        return None
    sequences = _sequences(tokenizer, texts, config.context)[: config.eval_sequences].to(device)  # type: ignore[arg-type]
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(sequences), config.batch_size):
            batch = sequences[start : start + config.batch_size]
            total += float(model(input_ids=batch, labels=batch).loss) * len(batch)
    model.train()
    return total / len(sequences)


def train_dpo(
    train_pairs: Sequence[tuple[str, str, str]],
    eval_pairs: Sequence[tuple[str, str, str]],
    config: TransformersTrainerConfig,
    beta: float = 0.1,
    on_step: Callable[[int, float], None] | None = None,
) -> RunMetrics:
    """Train ``config.model`` with the DPO loss (through TRL) on (prompt, chosen, rejected) text triples.

    L is the mean DPO loss over the first epoch's steps; the evaluation loss is the DPO loss on ``eval_pairs``.
    """
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    if not train_pairs:
        raise ValueError("DPO needs at least one preference pair to train on")
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(config.model)
    columns = ("prompt", "chosen", "rejected")

    def dataset(pairs: Sequence[tuple[str, str, str]]) -> datasets.Dataset:
        return datasets.Dataset.from_dict({name: [p[i] for p in pairs] for i, name in enumerate(columns)})

    per_epoch = math.ceil(len(train_pairs) / config.batch_size)
    losses: list[float] = []

    class Record(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: object, state: object, control: object, logs: dict | None = None, **kw: object) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                if on_step is not None:
                    on_step(len(losses), losses[-1])

    with tempfile.TemporaryDirectory() as folder:
        arguments = DPOConfig(
            output_dir=folder,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.batch_size,
            max_steps=config.max_steps or per_epoch * config.epochs,
            learning_rate=config.learning_rate,
            beta=beta,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            seed=config.seed,
            max_length=config.context,
            use_cpu=config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available()),
            disable_tqdm=True,
        )
        trainer = DPOTrainer(
            model=model,
            args=arguments,
            train_dataset=dataset(train_pairs),
            eval_dataset=dataset(eval_pairs) if eval_pairs else None,
            processing_class=tokenizer,
            callbacks=[Record()],
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        eval_loss = float(trainer.evaluate()["eval_loss"]) if eval_pairs else None
    first = losses[:per_epoch] or losses
    return RunMetrics(
        first_epoch_loss=sum(first) / len(first),
        eval_loss=eval_loss,
        step_losses=tuple(losses),
        steps=len(losses),
        tokens=0,
        seconds=seconds,
        loss_kind="dpo",
    )
