"""The built-in trainer: a small byte-level decoder-only transformer trained from scratch on CPU.

It measures what the Entropy Law needs from a data subset without any download: the first-epoch training loss L
and a next-byte evaluation loss on a fixed held-out set. Runs are deterministic under ``BuiltinTrainerConfig.seed``,
and a run given a checkpoint file resumes after a kill with exactly the losses and model of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from entropy_assets import versions
from entropy_assets.sources import write_atomically
from entropy_assets.training.metrics import LOSS_KINDS, RunMetrics

__all__ = [
    "BOS",
    "VOCAB_SIZE",
    "BuiltinTrainerConfig",
    "ByteTransformer",
    "byte_stream",
    "eval_sequences",
    "run_fingerprint",
    "train_builtin",
    "training_sequences",
]

BOS = 256
"""Token that starts every text, so that texts joined into one stream keep their boundaries."""
VOCAB_SIZE = 257
"""The 256 byte values and ``BOS``."""

_TRAINABLE_LOSS_KINDS: tuple[str, ...] = ("causal_lm", "causal_lm_prompt_chosen")
_CHECKPOINT_FORMAT = 2
_UNFINGERPRINTED: tuple[str, ...] = ("checkpoint_every",)
"""Config fields that do not change a run's results, so that changing them keeps its checkpoint usable."""
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinTrainerConfig:
    """Model size and optimisation settings. ``max_steps``, when set, replaces ``epochs``: exactly that many
    optimizer steps, cycling over the training sequences as often as needed (equal compute across subsets)."""

    seed: int = 0
    context: int = 128
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    batch_size: int = 16
    learning_rate: float = 3e-3
    epochs: int = 1
    max_steps: int | None = None
    eval_sequences: int = 64
    threads: int = 2
    warmup_steps: int = 10
    """Steps of linear learning-rate warmup from ``learning_rate / warmup_steps``; 0 for none."""
    checkpoint_every: int = 50
    """Steps between checkpoints, when ``train_builtin`` is given a checkpoint file; it does not change the run."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "max_steps" and value is None:
                continue
            if f.name == "learning_rate":
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise ValueError(f"learning_rate must be a finite number, got {value!r}")
                if value <= 0:
                    raise ValueError(f"learning_rate must be positive, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")
            if f.name in ("seed", "warmup_steps"):
                if value < 0:
                    raise ValueError(f"{f.name} must be zero or positive, got {value}")
            elif value <= 0:
                raise ValueError(f"{f.name} must be positive, got {value}")
        if self.d_model % self.heads:
            raise ValueError(f"heads must divide d_model: d_model={self.d_model} is not a multiple of {self.heads}")


def byte_stream(texts: Sequence[str]) -> torch.Tensor:
    """The texts as one stream of tokens: each text's UTF-8 bytes, preceded by ``BOS``; 16-bit integers (the 257
    tokens fit; 64-bit ones held a subset of the longest samples at ten million in about 3 GB each copy), filled in
    place: no text's bytes are held twice."""
    total = sum(len(text.encode("utf-8")) + 1 for text in texts)
    stream = np.empty(total, dtype=np.int16)
    at = 0
    for text in texts:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        stream[at] = BOS
        stream[at + 1 : at + 1 + len(data)] = data
        at += 1 + len(data)
    return torch.from_numpy(stream)


def _windows(texts: Sequence[str], context: int, what: str) -> torch.Tensor:
    """Consecutive windows of ``context + 1`` tokens, each starting where the previous one's targets end."""
    stream = byte_stream(texts)
    if stream.numel() < context + 1:
        raise ValueError(
            f"{what} texts are too short: one sequence needs {context + 1} bytes (context {context} + 1, "
            f"counting one separator per text), got {stream.numel()} from {len(texts)} text(s)"
        )
    count = (stream.numel() - 1) // context
    return stream[: count * context + 1].unfold(0, context + 1, context)


def training_sequences(texts: Sequence[str], config: BuiltinTrainerConfig) -> torch.Tensor:
    """All training sequences, shape ``(n, context + 1)``; inputs are ``[:, :-1]`` and targets ``[:, 1:]``. A view
    of the texts' token stream (consecutive sequences share one token), not a copy: a batch is gathered from it."""
    return _windows(texts, config.context, "training")


def eval_sequences(texts: Sequence[str], config: BuiltinTrainerConfig) -> torch.Tensor:
    """``config.eval_sequences`` fixed sequences spread evenly over the eval texts (all of them when there are
    fewer), shape ``(n, context + 1)``. They depend only on the eval texts, ``context`` and ``eval_sequences``."""
    windows = _windows(texts, config.context, "eval")
    total = windows.shape[0]
    count = min(config.eval_sequences, total)
    return windows[torch.arange(count) * total // count].contiguous()


class _Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a GELU MLP, each with a residual connection."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_out(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.mlp_norm(x))


class ByteTransformer(nn.Module):
    """Decoder-only transformer over ``VOCAB_SIZE`` tokens with learned positions and an output head tied to the
    token embedding."""

    def __init__(self, context: int, d_model: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB_SIZE, d_model)
        self.positions = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Next-token logits, shape ``(batch, length, VOCAB_SIZE)``."""
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        x = self.tokens(inputs) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.tokens.weight.T


def _sequence_loss(model: nn.Module, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    batch = batch.long()  # sequences are stored as 16-bit tokens
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), batch[:, 1:].reshape(-1), reduction=reduction)


@contextmanager
def _reproducible(config: BuiltinTrainerConfig) -> Iterator[None]:
    """Seeded, deterministic, ``config.threads``-threaded torch for the block; global settings restored after."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        torch.set_num_threads(config.threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_num_threads(threads)


def _batches(count: int, config: BuiltinTrainerConfig) -> Iterator[torch.Tensor]:
    """The sequence indices of each optimizer step, reshuffled every epoch, until the run's steps are
    done: ``max_steps`` if set, else ``epochs`` passes."""
    generator = torch.Generator().manual_seed(config.seed)
    steps, epoch = 0, 0
    while config.max_steps is not None or epoch < config.epochs:
        order = torch.randperm(count, generator=generator)
        for indices in order.split(config.batch_size):
            if config.max_steps is not None and steps >= config.max_steps:
                return
            yield indices
            steps += 1
        epoch += 1


def train_builtin(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    config: BuiltinTrainerConfig = BuiltinTrainerConfig(),
    on_step: Callable[[int, float], None] | None = None,
    loss_kind: str = "causal_lm",
    *,
    checkpoint: Path | None = None,
    keep_checkpoint: bool = False,
    on_resume: Callable[[int], None] | None = None,
    logger: logging.Logger | None = None,
) -> RunMetrics:
    """Train a fresh ``ByteTransformer`` on ``train_texts`` and return its losses: L is the mean step loss over the
    first pass through the training sequences, Z the next-byte loss (nats per token) on ``eval_sequences``.

    ``on_step(step, loss)`` is called after every optimizer step, with ``step`` counting from 1.

    With a ``checkpoint`` file, the run's state is saved there atomically every ``config.checkpoint_every`` steps,
    and a run that finds a checkpoint of the same run (same config, loss kind, data and torch version) resumes from
    it, calling ``on_resume(step)``: its losses and final model are exactly those of an uninterrupted run. A
    checkpoint of another run, or one that cannot be read, is ignored (with a warning to ``logger``) and replaced.
    The file is removed when the run completes, unless ``keep_checkpoint``: then it is saved at the last step too
    and left for the caller to remove once the results are stored.
    """
    if loss_kind not in _TRAINABLE_LOSS_KINDS:
        hint = "; train DPO with an external trainer reported through Pipes" if loss_kind in LOSS_KINDS else ""
        raise ValueError(
            f"loss_kind must be one of {', '.join(_TRAINABLE_LOSS_KINDS)} for the built-in trainer, "
            f"got {loss_kind!r}{hint}"
        )
    if not train_texts:
        raise ValueError(f"no training texts: one sequence needs {config.context + 1} bytes, got 0 texts")
    log = logger or _logger
    sequences = training_sequences(train_texts, config)
    held_out = eval_sequences(eval_texts, config) if eval_texts else None
    steps_per_epoch = math.ceil(sequences.shape[0] / config.batch_size)
    total_steps = config.max_steps if config.max_steps is not None else config.epochs * steps_per_epoch
    fingerprint = run_fingerprint(sequences, held_out, config, loss_kind) if checkpoint is not None else ""

    with _reproducible(config):
        saved = _read_checkpoint(checkpoint, fingerprint, total_steps, log) if checkpoint is not None else None
        model, optimizer, schedule, saved = _start(config, saved, log)
        step_losses: list[float] = list(saved["step_losses"]) if saved else []
        tokens: int = saved["tokens"] if saved else 0
        earlier_seconds: float = saved["seconds"] if saved else 0.0
        if saved is not None:
            log.info(f"resumed from step {len(step_losses)} of {total_steps} from checkpoint {checkpoint}")
        if on_resume is not None:
            on_resume(len(step_losses))
        started = time.perf_counter()

        def save() -> None:
            state = {
                "format": _CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "step": len(step_losses),
                "total_steps": total_steps,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "rng": torch.get_rng_state(),
                "step_losses": list(step_losses),
                "tokens": tokens,
                "seconds": earlier_seconds + time.perf_counter() - started,
            }
            write_atomically(checkpoint, lambda tmp: torch.save(state, tmp))  # type: ignore[arg-type]

        model.train()
        # The batch order is replayed from the seed, so a resumed run skips exactly the batches already trained on.
        for indices in itertools.islice(_batches(sequences.shape[0], config), len(step_losses), None):
            batch = sequences[indices]
            loss = _sequence_loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            value = loss.item()
            step_losses.append(value)
            tokens += batch.shape[0] * config.context
            if checkpoint is not None and len(step_losses) % config.checkpoint_every == 0:
                save()
            if on_step is not None:
                on_step(len(step_losses), value)
        if checkpoint is not None and keep_checkpoint and len(step_losses) % config.checkpoint_every:
            save()
        seconds = earlier_seconds + time.perf_counter() - started
        eval_loss = _evaluate(model, held_out, config.batch_size) if held_out is not None else None

    if checkpoint is not None and not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    first_epoch = step_losses[:steps_per_epoch]
    return RunMetrics(
        first_epoch_loss=sum(first_epoch) / len(first_epoch),
        eval_loss=eval_loss,
        step_losses=tuple(step_losses),
        steps=len(step_losses),
        tokens=tokens,
        seconds=seconds,
        loss_kind=loss_kind,
    )


def run_fingerprint(
    sequences: torch.Tensor, held_out: torch.Tensor | None, config: BuiltinTrainerConfig, loss_kind: str
) -> str:
    """sha256 of what determines a run's results: the config (less ``checkpoint_every``), the loss kind, the torch
    version and the training and evaluation sequences. A checkpoint is resumed only by a run of the same one."""
    settings = {k: v for k, v in asdict(config).items() if k not in _UNFINGERPRINTED}
    described = {"format": _CHECKPOINT_FORMAT, "config": settings, "loss_kind": loss_kind, "torch": torch.__version__}
    arrays = [None if tensor is None else _digest(tensor) for tensor in (sequences, held_out)]
    return versions.run_fingerprint(described, arrays)


def _digest(tensor: torch.Tensor, rows: int = 4096) -> np.ndarray:
    """sha256 of a tensor's shape and values, ``rows`` rows at a time: a view of the token stream is never copied
    whole."""
    digest = hashlib.sha256(repr(tuple(tensor.shape)).encode("ascii"))
    for block in tensor.split(rows):
        digest.update(memoryview(block.contiguous().numpy()).cast("B"))
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def _fresh_model(
    config: BuiltinTrainerConfig,
) -> tuple[ByteTransformer, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """A new model (initialized from the torch random state), its AdamW optimizer and warmup schedule."""
    model = ByteTransformer(config.context, config.d_model, config.layers, config.heads)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    warmup = config.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, warmup)))
    return model, optimizer, schedule


def _start(
    config: BuiltinTrainerConfig, saved: dict[str, Any] | None, log: logging.Logger
) -> tuple[ByteTransformer, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, dict[str, Any] | None]:
    """The model, optimizer and schedule to train: fresh, or as ``saved`` left them (torch's random state too);
    and ``saved``, or None when its state does not fit and the run starts over."""
    model, optimizer, schedule = _fresh_model(config)
    if saved is None:
        return model, optimizer, schedule, None
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["rng"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        log.warning(f"checkpoint ignored: its state does not fit this model ({exc}); starting over")
        torch.manual_seed(config.seed)
        return (*_fresh_model(config), None)
    return model, optimizer, schedule, saved


def _read_checkpoint(path: Path, fingerprint: str, total_steps: int, log: logging.Logger) -> dict[str, Any] | None:
    """The saved state at ``path`` if it is a readable checkpoint of this run; None (with a warning saying why
    when a file is there) otherwise."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways, all of them meaning "unusable"
        log.warning(f"checkpoint {path} ignored: it cannot be read ({type(exc).__name__}: {exc}); starting over")
        return None
    problem = _checkpoint_problem(saved, fingerprint, total_steps)
    if problem is not None:
        log.warning(f"checkpoint {path} ignored: {problem}; starting over, and it will be replaced")
        return None
    return saved


def _checkpoint_problem(saved: object, fingerprint: str, total_steps: int) -> str | None:
    """Why ``saved`` cannot resume this run, or None when it can."""
    if not isinstance(saved, dict) or saved.get("format") != _CHECKPOINT_FORMAT:
        return f"it is not a checkpoint of format {_CHECKPOINT_FORMAT}"
    if saved.get("fingerprint") != fingerprint:
        return (
            f"it belongs to another run (fingerprint {str(saved.get('fingerprint'))[:12]}, this run's "
            f"{fingerprint[:12]}: the config, loss kind, data or torch version differ)"
        )
    step, losses = saved.get("step"), saved.get("step_losses")
    if not isinstance(step, int) or not isinstance(losses, list) or len(losses) != step:
        return "its step count and step losses disagree"
    if not 0 < step <= total_steps:
        return f"its step {step} is outside this run's 1..{total_steps}"
    missing = {"model", "optimizer", "schedule", "rng", "tokens", "seconds"} - saved.keys()
    if missing:
        return f"it lacks {', '.join(sorted(missing))}"
    return None


def _evaluate(model: nn.Module, sequences: torch.Tensor, batch_size: int) -> float:
    """Mean next-token cross-entropy over every target in ``sequences``."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for batch in sequences.split(batch_size):
            total += _sequence_loss(model, batch, reduction="sum").item()
    return total / (sequences.shape[0] * (sequences.shape[1] - 1))
