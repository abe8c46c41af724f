"""The built-in trainer on real Alpaca text, with a tiny model so that each run takes well under a second."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from entropy_assets.training.builtin import (
    BOS,
    BuiltinTrainerConfig,
    eval_sequences,
    train_builtin,
    training_sequences,
)

TINY = BuiltinTrainerConfig(context=64, d_model=32, layers=1, heads=2, batch_size=8, eval_sequences=16, max_steps=20)


def _stream_bytes(texts: list[str]) -> int:
    return sum(1 + len(t.encode("utf-8")) for t in texts)


def test_same_seed_gives_identical_losses_and_another_seed_does_not(
    train_texts: list[str], eval_texts: list[str]
) -> None:
    first = train_builtin(train_texts, eval_texts, TINY)
    again = train_builtin(train_texts, eval_texts, TINY)
    other = train_builtin(train_texts, eval_texts, replace(TINY, seed=1))
    assert first.step_losses == again.step_losses
    assert first.eval_loss == again.eval_loss
    assert first.first_epoch_loss == again.first_epoch_loss
    assert other.step_losses != first.step_losses
    assert other.step_losses[0] != first.step_losses[0]


def test_loss_starts_near_uniform_and_falls(train_texts: list[str], eval_texts: list[str]) -> None:
    metrics = train_builtin(train_texts, eval_texts, replace(TINY, max_steps=60))
    losses = metrics.step_losses
    assert losses[0] == pytest.approx(math.log(256), abs=0.15)
    assert sum(losses[-10:]) / 10 < losses[0] - 1.0
    assert metrics.eval_loss is not None
    assert metrics.eval_loss < losses[0] - 1.0
    assert metrics.loss_kind == "causal_lm"
    assert metrics.seconds > 0


def test_first_epoch_loss_is_the_mean_of_the_first_pass(train_texts: list[str]) -> None:
    config = replace(TINY, max_steps=None, epochs=2)
    n_sequences = (_stream_bytes(train_texts) - 1) // config.context
    assert training_sequences(train_texts, config).shape == (n_sequences, config.context + 1)
    steps_per_epoch = math.ceil(n_sequences / config.batch_size)

    metrics = train_builtin(train_texts, [], config)

    assert metrics.steps == len(metrics.step_losses) == 2 * steps_per_epoch
    assert metrics.first_epoch_loss == sum(metrics.step_losses[:steps_per_epoch]) / steps_per_epoch
    assert metrics.first_epoch_loss != sum(metrics.step_losses) / metrics.steps
    assert metrics.tokens == 2 * n_sequences * config.context
    assert metrics.eval_loss is None


def test_max_steps_trains_exactly_that_many_steps_across_epochs(train_texts: list[str]) -> None:
    steps_per_epoch = math.ceil(training_sequences(train_texts, TINY).shape[0] / TINY.batch_size)
    longer = train_builtin(train_texts, [], replace(TINY, max_steps=2 * steps_per_epoch + 3, epochs=1))
    assert longer.steps == len(longer.step_losses) == 2 * steps_per_epoch + 3
    assert longer.first_epoch_loss == sum(longer.step_losses[:steps_per_epoch]) / steps_per_epoch

    shorter = train_builtin(train_texts, [], replace(TINY, max_steps=5, epochs=3))
    assert shorter.steps == 5
    assert shorter.tokens == 5 * TINY.batch_size * TINY.context
    assert shorter.first_epoch_loss == sum(shorter.step_losses) / 5
    assert shorter.step_losses == longer.step_losses[:5]


def test_eval_sequences_depend_only_on_the_eval_texts(
    alpaca: list[str], train_texts: list[str], eval_texts: list[str]
) -> None:
    sequences = eval_sequences(eval_texts, TINY)
    assert sequences.shape == (TINY.eval_sequences, TINY.context + 1)
    assert torch.equal(sequences, eval_sequences(list(eval_texts), replace(TINY, seed=7, d_model=64)))
    assert len({tuple(row.tolist()) for row in sequences}) == TINY.eval_sequences
    first = bytes(b for b in sequences[0].tolist() if b != BOS).decode("utf-8", errors="ignore")
    assert first[:20] in eval_texts[0]

    on_one = train_builtin(train_texts, eval_texts, replace(TINY, max_steps=1, learning_rate=1e-9))
    on_other = train_builtin(alpaca[100:140], eval_texts, replace(TINY, max_steps=1, learning_rate=1e-9))
    assert on_one.eval_loss == pytest.approx(on_other.eval_loss, abs=1e-6)


def test_eval_uses_every_sequence_when_the_eval_texts_are_short(eval_texts: list[str]) -> None:
    few = eval_texts[:2]
    windows = (_stream_bytes(few) - 1) // TINY.context
    assert windows < 64
    assert eval_sequences(few, replace(TINY, eval_sequences=64)).shape == (windows, TINY.context + 1)


def test_on_step_reports_each_step_and_its_loss(train_texts: list[str]) -> None:
    seen: list[tuple[int, float]] = []
    metrics = train_builtin(train_texts, [], replace(TINY, max_steps=7), on_step=lambda s, loss: seen.append((s, loss)))
    assert seen == list(enumerate(metrics.step_losses, start=1))


def test_torch_threads_and_global_random_state_are_restored(train_texts: list[str]) -> None:
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    train_builtin(train_texts, [], replace(TINY, max_steps=2, threads=1))
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.are_deterministic_algorithms_enabled()


def test_training_texts_that_are_empty_or_too_short_are_rejected_with_sizes(eval_texts: list[str]) -> None:
    with pytest.raises(ValueError, match=r"no training texts.*65 bytes"):
        train_builtin([], eval_texts, TINY)
    with pytest.raises(ValueError, match=r"needs 65 bytes.*got 9 from 2 text"):
        train_builtin(["abc", "déf"], eval_texts, TINY)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"heads": 3}, "heads"),
        ({"batch_size": 0}, "batch_size"),
        ({"context": -1}, "context"),
        ({"max_steps": 0}, "max_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"layers": 1.5}, "layers"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
    ],
)
def test_bad_config_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        replace(TINY, **changes)


def test_dpo_is_left_to_external_trainers(train_texts: list[str]) -> None:
    with pytest.raises(ValueError, match="Pipes"):
        train_builtin(train_texts, [], TINY, loss_kind="dpo")
    assert train_builtin(train_texts, [], replace(TINY, max_steps=1), loss_kind="causal_lm_prompt_chosen").steps == 1
