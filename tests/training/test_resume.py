"""Checkpoints of the built-in trainer: a run interrupted (by an exception or a SIGKILL) and run again resumes from
its last checkpoint and ends exactly where an uninterrupted run ends; checkpoints it cannot trust are ignored."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from entropy_assets.training.builtin import BuiltinTrainerConfig, train_builtin
from entropy_assets.training.metrics import RunMetrics

TINY = BuiltinTrainerConfig(
    context=64,
    d_model=32,
    layers=1,
    heads=2,
    batch_size=8,
    eval_sequences=16,
    max_steps=60,
    checkpoint_every=10,
    threads=1,  # two threads slow down tenfold on a busy two-core machine
)


class Interrupted(Exception):
    """Raised from ``on_step`` to stop a run part way, as a crash would."""


class Messages(logging.Handler):
    """Collects what the trainer logs, on a logger of the test's own."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"test_resume.{id(self)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture(scope="module")
def uninterrupted(train_texts: list[str], eval_texts: list[str]) -> RunMetrics:
    return train_builtin(train_texts, eval_texts, TINY)


@pytest.fixture(scope="module")
def saved_at_20(train_texts: list[str], eval_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The checkpoint a run of ``TINY`` leaves when it is interrupted at step 25."""
    checkpoint = tmp_path_factory.mktemp("saved") / "run.checkpoint.pt"
    with pytest.raises(Interrupted):
        train_builtin(train_texts, eval_texts, TINY, interrupt_at(25), checkpoint=checkpoint)
    assert saved_step(checkpoint) == 20
    return checkpoint.read_bytes()


def interrupt_at(step: int) -> object:
    def on_step(done: int, _loss: float) -> None:
        if done == step:
            raise Interrupted(f"stopped at step {done}")

    return on_step


def saved_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def test_a_run_interrupted_and_run_again_ends_exactly_like_an_uninterrupted_one(
    train_texts: list[str], eval_texts: list[str], uninterrupted: RunMetrics, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "run.checkpoint.pt"
    with pytest.raises(Interrupted):
        train_builtin(train_texts, eval_texts, TINY, interrupt_at(37), checkpoint=checkpoint)
    assert saved_step(checkpoint) == 30  # the last completed checkpoint; steps 31 to 37 are trained again

    resumed_from: list[int] = []
    seen: list[int] = []
    messages = Messages()
    metrics = train_builtin(
        train_texts,
        eval_texts,
        TINY,
        lambda step, _loss: seen.append(step),
        checkpoint=checkpoint,
        on_resume=resumed_from.append,
        logger=messages.logger,
    )
    assert resumed_from == [30] and seen == list(range(31, 61))
    assert messages.lines == [f"INFO resumed from step 30 of 60 from checkpoint {checkpoint}"]
    assert metrics.step_losses == uninterrupted.step_losses
    assert metrics.eval_loss == uninterrupted.eval_loss
    assert metrics.first_epoch_loss == uninterrupted.first_epoch_loss
    assert metrics.tokens == uninterrupted.tokens and metrics.steps == 60
    assert not checkpoint.exists()  # removed once the run completed
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_run_killed_twice_by_sigkill_resumes_from_its_last_checkpoint_each_time(
    train_texts: list[str], eval_texts: list[str], tmp_path: Path, kill_when: Callable[..., None]
) -> None:
    config = replace(TINY, max_steps=120)
    checkpoint = tmp_path / "run.checkpoint.pt"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {"train": train_texts, "eval": eval_texts, "config": config.__dict__, "checkpoint": str(checkpoint)}
        ),
        encoding="utf-8",
    )
    # The child sleeps after each step (which changes nothing it computes), so that it is still running when killed.
    child = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from entropy_assets.training.builtin import BuiltinTrainerConfig, train_builtin\n"
        "spec = json.loads(Path(sys.argv[1]).read_text(encoding='utf-8'))\n"
        "train_builtin(spec['train'], spec['eval'], BuiltinTrainerConfig(**spec['config']),\n"
        "              lambda step, loss: time.sleep(0.02), checkpoint=Path(spec['checkpoint']))\n"
    )
    killed_at: list[int] = []
    for _ in range(2):
        before = saved_step(checkpoint) if checkpoint.exists() else 0
        process = subprocess.Popen([sys.executable, "-c", child, str(spec)])
        kill_when(
            process,
            lambda before=before: checkpoint.exists() and saved_step(checkpoint) > before,
            within=60,
            what="a new checkpoint",
        )
        killed_at.append(saved_step(checkpoint))  # loadable: never torn
    assert 0 < killed_at[0] < killed_at[1] < 120

    resumed_from: list[int] = []
    metrics = train_builtin(train_texts, eval_texts, config, checkpoint=checkpoint, on_resume=resumed_from.append)
    assert resumed_from == [killed_at[1]]
    again = train_builtin(train_texts, eval_texts, config)
    assert metrics.step_losses == again.step_losses and metrics.eval_loss == again.eval_loss
    assert not checkpoint.exists()


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"config": {"seed": 1}}, id="another seed"),
        pytest.param({"config": {"learning_rate": 1e-3}}, id="another learning rate"),
        pytest.param({"config": {"d_model": 16}}, id="another model size"),
        pytest.param({"train": slice(1, 41)}, id="other training texts"),
        pytest.param({"eval": slice(0, 30)}, id="other eval texts"),
        pytest.param({"loss_kind": "causal_lm_prompt_chosen"}, id="another loss kind"),
    ],
)
def test_a_checkpoint_of_another_run_is_never_resumed(
    alpaca: list[str], saved_at_20: bytes, other: dict[str, object], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "run.checkpoint.pt"
    checkpoint.write_bytes(saved_at_20)

    config = replace(TINY, **other.get("config", {}))  # type: ignore[arg-type]
    train = alpaca[other["train"]] if "train" in other else alpaca[:40]  # type: ignore[index]
    evaluation = alpaca[-40:][other["eval"]] if "eval" in other else alpaca[-40:]  # type: ignore[index]
    loss_kind = str(other.get("loss_kind", "causal_lm"))
    resumed_from: list[int] = []
    messages = Messages()
    seen: list[int] = []

    def on_step(step: int, _loss: float) -> None:
        seen.append(step)
        if step == 5:
            raise Interrupted("enough to see where it started")

    with pytest.raises(Interrupted):
        train_builtin(
            train,
            evaluation,
            config,
            on_step,
            loss_kind=loss_kind,
            checkpoint=checkpoint,
            on_resume=resumed_from.append,
            logger=messages.logger,
        )
    assert resumed_from == [0] and seen == [1, 2, 3, 4, 5]
    (line,) = messages.lines
    assert line.startswith(f"WARNING checkpoint {checkpoint} ignored: it belongs to another run")


def test_changing_only_the_checkpoint_interval_still_resumes(
    train_texts: list[str], eval_texts: list[str], uninterrupted: RunMetrics, saved_at_20: bytes, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "run.checkpoint.pt"
    checkpoint.write_bytes(saved_at_20)
    resumed_from: list[int] = []
    metrics = train_builtin(
        train_texts,
        eval_texts,
        replace(TINY, checkpoint_every=7),
        checkpoint=checkpoint,
        on_resume=resumed_from.append,
    )
    assert resumed_from == [20] and metrics.step_losses == uninterrupted.step_losses


@pytest.mark.parametrize("keep", [0, 1, 1000], ids=["empty", "one byte", "cut short"])
def test_a_truncated_checkpoint_is_reported_and_ignored(
    train_texts: list[str],
    eval_texts: list[str],
    uninterrupted: RunMetrics,
    saved_at_20: bytes,
    tmp_path: Path,
    keep: int,
) -> None:
    checkpoint = tmp_path / "run.checkpoint.pt"
    checkpoint.write_bytes(saved_at_20[:keep])

    resumed_from: list[int] = []
    messages = Messages()
    metrics = train_builtin(
        train_texts, eval_texts, TINY, checkpoint=checkpoint, on_resume=resumed_from.append, logger=messages.logger
    )
    assert resumed_from == [0]
    (line,) = messages.lines
    assert line.startswith(f"WARNING checkpoint {checkpoint} ignored: it cannot be read")
    assert metrics.step_losses == uninterrupted.step_losses and metrics.eval_loss == uninterrupted.eval_loss


def test_a_save_cut_short_leaves_the_previous_checkpoint_whole(
    train_texts: list[str], eval_texts: list[str], uninterrupted: RunMetrics, tmp_path: Path, monkeypatch
) -> None:
    checkpoint = tmp_path / "run.checkpoint.pt"
    real_save = torch.save
    saves: list[int] = []

    def dying_save(state: dict[str, object], path: Path) -> None:
        saves.append(int(state["step"]))  # type: ignore[call-overload]
        if len(saves) == 3:  # the third save dies half written
            real_save(state, path)
            Path(path).write_bytes(Path(path).read_bytes()[:500])
            raise Interrupted("killed while saving")
        real_save(state, path)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(Interrupted):
        train_builtin(train_texts, eval_texts, TINY, checkpoint=checkpoint)
    monkeypatch.undo()
    assert saves == [10, 20, 30]
    assert saved_step(checkpoint) == 20
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.name]  # the half-written temporary file is gone

    resumed_from: list[int] = []
    metrics = train_builtin(train_texts, eval_texts, TINY, checkpoint=checkpoint, on_resume=resumed_from.append)
    assert resumed_from == [20] and metrics.step_losses == uninterrupted.step_losses


def test_keep_checkpoint_saves_the_last_step_and_a_complete_checkpoint_only_evaluates(
    train_texts: list[str], eval_texts: list[str], uninterrupted: RunMetrics, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "run.checkpoint.pt"
    config = replace(TINY, checkpoint_every=25)  # 60 steps: saved at 25 and 50, and at 60 because it is kept
    first = train_builtin(train_texts, eval_texts, config, checkpoint=checkpoint, keep_checkpoint=True)
    assert saved_step(checkpoint) == 60 and first.step_losses == uninterrupted.step_losses

    seen: list[int] = []
    resumed_from: list[int] = []
    again = train_builtin(
        train_texts,
        eval_texts,
        config,
        lambda step, _loss: seen.append(step),
        checkpoint=checkpoint,
        on_resume=resumed_from.append,
    )
    assert resumed_from == [60] and seen == []
    assert again.step_losses == uninterrupted.step_losses and again.eval_loss == uninterrupted.eval_loss
    assert not checkpoint.exists()


def test_epochs_runs_resume_too(train_texts: list[str], tmp_path: Path) -> None:
    config = replace(TINY, max_steps=None, epochs=3, checkpoint_every=4)
    whole = train_builtin(train_texts, [], config)
    checkpoint = tmp_path / "run.checkpoint.pt"
    with pytest.raises(Interrupted):
        train_builtin(train_texts, [], config, interrupt_at(whole.steps - 2), checkpoint=checkpoint)
    metrics = train_builtin(train_texts, [], config, checkpoint=checkpoint)
    assert metrics.step_losses == whole.step_losses and metrics.first_epoch_loss == whole.first_epoch_loss
