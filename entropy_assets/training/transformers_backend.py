"""Fine-tune a Hugging Face causal language model on a subset, recording the same metrics as the built-in trainer.

The model and its tokenizer load from a local folder (or a hub name where the network allows); training runs on
the GPU when there is one, in bfloat16 mixed precision where the GPU supports it, optionally through a LoRA adapter
(``peft``). ``transformers``, ``torch`` and ``peft`` are optional extras (``pip install
'entropy-assets[transformers]'``); ``docs/gpu_training.md`` describes a real GPU run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from entropy_assets.training.metrics import RunMetrics

DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
"""Precisions of a run; ``auto`` is bfloat16 on a CUDA device that supports it, else float32."""

INSTALL_HINT = "pip install 'entropy-assets[transformers]'"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraAdapterConfig:
    """A LoRA adapter (through ``peft``): low-rank matrices beside the ``target_modules`` are trained, while the
    model's own weights stay frozen. ``alpha / r`` scales the adapter's output."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    """Names of the layers to adapt (``q_proj``, ``v_proj``, ... for Qwen and Llama, ``c_attn`` for GPT-2);
    ``None`` takes peft's default for the model's architecture."""

    def __post_init__(self) -> None:
        where = "TransformersTrainerConfig.lora"
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"{where}.r must be a positive integer, got {self.r!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not self.alpha > 0:
            raise ValueError(f"{where}.alpha must be a positive number, got {self.alpha!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"{where}.dropout must be in [0, 1), got {self.dropout!r}")
        modules = self.target_modules
        if modules is not None:
            if isinstance(modules, str) or not isinstance(modules, Sequence) or not modules:
                raise ValueError(f"{where}.target_modules must be a non-empty list of layer names, got {modules!r}")
            if not all(isinstance(m, str) and m for m in modules):
                raise ValueError(f"{where}.target_modules must hold layer names (strings), got {list(modules)!r}")
            object.__setattr__(self, "target_modules", tuple(modules))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LoraAdapterConfig:
        """From a YAML mapping such as ``{r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, v_proj]}``."""
        known = sorted(f.name for f in fields(cls))
        unknown = sorted(set(values) - set(known))
        if unknown:
            expected = ", ".join(known)
            raise ValueError(f"TransformersTrainerConfig.lora.{unknown[0]} is not a LoRA setting; expected {expected}")
        return cls(**values)


@dataclass(frozen=True)
class TransformersTrainerConfig:
    """Settings of a fine-tuning run; ``model`` is a local folder or a hub name.

    An optimizer step takes ``batch_size * gradient_accumulation`` sequences of ``context`` tokens; ``lora`` (a
    ``LoraAdapterConfig`` or a mapping of its fields) trains an adapter instead of every weight.
    """

    model: str
    seed: int = 0
    context: int = 512
    batch_size: int = 4
    """Sequences per forward pass (a micro-batch)."""
    learning_rate: float = 5e-5
    max_steps: int | None = None
    epochs: int = 1
    eval_sequences: int = 64
    device: str = "auto"
    """``auto`` picks CUDA when available, else the CPU."""
    dtype: str = "auto"
    """Precision of the forward and backward passes (autocast) and of frozen weights; trained weights and the
    optimizer's state stay float32. ``auto`` is bfloat16 on a CUDA device that supports it, else float32."""
    gradient_accumulation: int = 1
    """Micro-batches whose gradients add up to one optimizer step; a step's loss is their mean."""
    lora: LoraAdapterConfig | None = None
    """Train a LoRA adapter (``peft``) instead of every weight; ``None`` fine-tunes the whole model."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of storing them: less memory, about a third more
    compute, the same losses."""
    completion_only_loss: bool = False
    """Take the loss on completions only: the prompt tokens of samples whose records have a prompt and a completion
    apart (Alpaca, prompt-completion, a conversation's last assistant turns, ...) are not predicted (as TRL's
    ``completion_only_loss``); samples without a prompt train whole. L is then the loss on completions."""

    def __post_init__(self) -> None:
        for name in ("context", "batch_size", "epochs", "eval_sequences"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TransformersTrainerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"TransformersTrainerConfig.max_steps must be positive, got {self.max_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"TransformersTrainerConfig.learning_rate must be positive, got {self.learning_rate}")
        if self.dtype not in DTYPES:
            raise ValueError(f"TransformersTrainerConfig.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        accumulation = self.gradient_accumulation
        if isinstance(accumulation, bool) or not isinstance(accumulation, int) or accumulation <= 0:
            raise ValueError(
                f"TransformersTrainerConfig.gradient_accumulation must be a positive integer, got {accumulation!r}"
            )
        if isinstance(self.lora, Mapping):
            object.__setattr__(self, "lora", LoraAdapterConfig.from_mapping(self.lora))
        elif self.lora is not None and not isinstance(self.lora, LoraAdapterConfig):
            raise ValueError(
                f"TransformersTrainerConfig.lora must be a mapping of r, alpha, dropout, target_modules or None, "
                f"got {type(self.lora).__name__}"
            )
        for name in ("gradient_checkpointing", "completion_only_loss"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TransformersTrainerConfig.{name} must be true or false, got {getattr(self, name)!r}")


def _device(config: TransformersTrainerConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _precision(config: TransformersTrainerConfig, device: torch.device) -> torch.dtype:
    """The run's precision: ``auto`` is bfloat16 on a CUDA device with native bfloat16 support, else float32."""
    if config.dtype == "auto":
        native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float32
    return getattr(torch, config.dtype)


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _peft() -> Any:
    try:
        import peft
    except ImportError as error:
        raise ImportError(f"TransformersTrainerConfig.lora needs the peft library: {INSTALL_HINT}") from error
    return peft


def _peft_config(lora: LoraAdapterConfig) -> Any:
    """The adapter as ``peft.LoraConfig``."""
    return _peft().LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules) if lora.target_modules is not None else None,
        task_type="CAUSAL_LM",
    )


def _load_model(config: TransformersTrainerConfig, dtype: torch.dtype) -> torch.nn.Module:
    """The model with float32 weights, or with weights in ``dtype`` when a LoRA adapter leaves them frozen."""
    import transformers
    from packaging.version import Version

    if config.lora is not None:
        _peft()  # before loading a model, so that a missing peft fails fast
    keyword = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    weights = dtype if config.lora is not None else torch.float32
    return transformers.AutoModelForCausalLM.from_pretrained(config.model, **{keyword: weights})


def _checkpoint_activations(model: torch.nn.Module) -> None:
    """Gradient (activation) checkpointing, non-reentrant so that it works when the embeddings are frozen."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)  # type: ignore[operator]
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # type: ignore[operator]
    model.config.use_cache = False  # type: ignore[union-attr]


def _with_adapter(model: torch.nn.Module, lora: LoraAdapterConfig) -> torch.nn.Module:
    """``model`` with a LoRA adapter: only the adapter's parameters require gradients (kept float32 by peft)."""
    adapted = _peft().get_peft_model(model, _peft_config(lora))
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    total = sum(p.numel() for p in adapted.parameters())
    log.info(f"LoRA adapter: {trainable:,} of {total:,} parameters train ({trainable / total:.2%})")
    return adapted


IGNORED = -100
"""The label of a token the loss skips (the transformers convention)."""


def _windows(
    tokenizer: object, texts: Sequence[str], context: int, prompts: Sequence[str | None] | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Texts tokenized, each ended by the end-of-text token, joined and cut into ``context + 1`` windows; with
    ``prompts`` (each text's prompt, which with a newline begins it, or None), also the windows' labels: the prompt
    tokens (the prompt and its newline, tokenized apart from the completion) are ``IGNORED``. Windows with nothing
    left to predict are dropped."""
    eos = tokenizer.eos_token_id  # type: ignore[attr-defined]

    def tokens(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator,no-any-return]

    ids: list[int] = []
    labels: list[int] = []
    for index, text in enumerate(texts):
        prompt = prompts[index] if prompts is not None else None
        if prompt is not None and text.startswith(prompt + "\n"):
            head, tail = tokens(prompt + "\n"), tokens(text[len(prompt) + 1 :])
            ids.extend(head + tail)
            labels.extend([IGNORED] * len(head) + tail)
        else:
            whole = tokens(text)
            ids.extend(whole)
            labels.extend(whole)
        if eos is not None:
            ids.append(eos)
            labels.append(eos)
    count = (len(ids) - 1) // context
    if count <= 0:
        raise ValueError(f"texts are too short: one sequence needs {context + 1} tokens, got {len(ids)}")
    starts = range(0, count * context, context)
    inputs = torch.tensor(ids[: count * context + 1], dtype=torch.long)
    windows = torch.stack([inputs[i : i + context + 1] for i in starts])
    if prompts is None:
        return windows, None
    targets = torch.tensor(labels[: count * context + 1], dtype=torch.long)
    masks = torch.stack([targets[i : i + context + 1] for i in starts])
    kept = (masks[:, 1:] != IGNORED).any(dim=1)
    if not bool(kept.any()):
        raise ValueError("every token of the texts is a prompt token: there is no completion to train on")
    return windows[kept], masks[kept]


def train_transformers(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    config: TransformersTrainerConfig,
    on_step: Callable[[int, float], None] | None = None,
    loss_kind: str = "causal_lm",
    *,
    train_prompts: Sequence[str | None] | None = None,
    eval_prompts: Sequence[str | None] | None = None,
) -> RunMetrics:
    """Fine-tune ``config.model`` on ``train_texts``; L is the mean loss over the first epoch's steps, a step's loss
    being the mean over its ``batch_size * gradient_accumulation`` sequences. With ``config.completion_only_loss``,
    the prompts (``train_prompts``, ``eval_prompts``: each text's prompt, or None) are not predicted."""
    from transformers import AutoTokenizer

    device = _device(config)
    dtype = _precision(config, device)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    model = _load_model(config, dtype)
    if config.gradient_checkpointing:
        _checkpoint_activations(model)
    if config.lora is not None:
        model = _with_adapter(model, config.lora)
    model = model.to(device)
    masked = config.completion_only_loss
    train, train_labels = _windows(tokenizer, train_texts, config.context, train_prompts if masked else None)
    per_step = config.batch_size * config.gradient_accumulation
    per_epoch = math.ceil(len(train) / per_step)
    total = config.max_steps or per_epoch * config.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # float16 gradients underflow
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
        chosen = order[position * per_step : (position + 1) * per_step]
        optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), device=device)
        for part in chosen.split(config.batch_size):
            batch = train[part].to(device)
            labels = train_labels[part].to(device) if train_labels is not None else batch
            with _autocast(device, dtype):
                loss = model(input_ids=batch, labels=labels).loss  # the model shifts labels by one itself
            if len(part) < len(chosen):  # the step's loss (and gradient) is the mean over all its sequences
                loss = loss * (len(part) / len(chosen))
            scaler.scale(loss).backward()
            step_loss += loss.detach().float()
            tokens += int(batch[:, 1:].numel())
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(step_loss))
        if on_step is not None:
            on_step(step, losses[-1])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return RunMetrics(
        first_epoch_loss=sum(losses[:per_epoch]) / len(losses[:per_epoch]),
        eval_loss=_evaluate(model, tokenizer, eval_texts, config, device, dtype, eval_prompts if masked else None),
        step_losses=tuple(losses),
        steps=len(losses),
        tokens=tokens,
        seconds=seconds,
        loss_kind=loss_kind,
    )


def _evaluate(
    model: torch.nn.Module,
    tokenizer: object,
    texts: Sequence[str],
    config: TransformersTrainerConfig,
    device: torch.device,
    dtype: torch.dtype,
    prompts: Sequence[str | None] | None = None,
) -> float | None:
    if not texts:
        return None
    windows, masks = _windows(tokenizer, texts, config.context, prompts)
    sequences = windows[: config.eval_sequences].to(device)
    targets = masks[: config.eval_sequences].to(device) if masks is not None else sequences
    model.eval()
    total = 0.0
    with torch.no_grad(), _autocast(device, dtype):
        for start in range(0, len(sequences), config.batch_size):
            batch = sequences[start : start + config.batch_size]
            labels = targets[start : start + config.batch_size]
            total += float(model(input_ids=batch, labels=labels).loss) * len(batch)
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

    L is the mean DPO loss over the first epoch's steps; the evaluation loss is the DPO loss on ``eval_pairs``. With
    ``config.lora`` TRL trains the adapter, and the model without it is the reference: no second copy is loaded.
    """
    import datasets
    from transformers import AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    if not train_pairs:
        raise ValueError("DPO needs at least one preference pair to train on")
    device = _device(config)
    dtype = _precision(config, device)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_model(config, dtype)
    columns = ("prompt", "chosen", "rejected")

    def dataset(pairs: Sequence[tuple[str, str, str]]) -> datasets.Dataset:
        return datasets.Dataset.from_dict({name: [p[i] for p in pairs] for i, name in enumerate(columns)})

    per_epoch = math.ceil(len(train_pairs) / (config.batch_size * config.gradient_accumulation))
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
            gradient_accumulation_steps=config.gradient_accumulation,
            max_steps=config.max_steps or per_epoch * config.epochs,
            learning_rate=config.learning_rate,
            beta=beta,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            seed=config.seed,
            max_length=config.context,
            use_cpu=device.type == "cpu",
            bf16=dtype == torch.bfloat16,
            fp16=dtype == torch.float16,
            gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
            disable_tqdm=True,
        )
        trainer = DPOTrainer(
            model=model,
            args=arguments,
            train_dataset=dataset(train_pairs),
            eval_dataset=dataset(eval_pairs) if eval_pairs else None,
            processing_class=tokenizer,
            callbacks=[Record()],
            peft_config=_peft_config(config.lora) if config.lora is not None else None,
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
