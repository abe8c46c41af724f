"""The transformers backend on a tiny, randomly initialized GPT-2 built from a config: no download."""

import math
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from entropy_assets.training.transformers_backend import TransformersTrainerConfig, train_transformers  # noqa: E402


@pytest.fixture(scope="module")
def texts(alpaca: list[str]) -> list[str]:
    return alpaca[:300]


def test_fine_tuning_a_tiny_model_records_falling_losses(texts: list[str], tiny_model: Path) -> None:
    config = TransformersTrainerConfig(
        model=str(tiny_model), context=64, batch_size=8, max_steps=60, learning_rate=5e-3
    )
    steps: list[int] = []
    metrics = train_transformers(texts[:200], texts[200:], config, on_step=lambda step, loss: steps.append(step))
    assert steps == list(range(1, 61)) and metrics.steps == 60 and metrics.tokens == 60 * 8 * 64
    assert metrics.step_losses[0] == pytest.approx(math.log(400), abs=0.5)  # untrained: about uniform
    assert sum(metrics.step_losses[-5:]) / 5 < metrics.step_losses[0] - 0.5
    assert metrics.eval_loss is not None and metrics.eval_loss < metrics.step_losses[0]


def test_fine_tuning_is_deterministic_under_a_seed(texts: list[str], tiny_model: Path) -> None:
    config = TransformersTrainerConfig(model=str(tiny_model), context=64, batch_size=8, max_steps=5, device="cpu")
    first = train_transformers(texts[:100], texts[200:], config)
    second = train_transformers(texts[:100], texts[200:], config)
    assert first.step_losses == second.step_losses and first.eval_loss == second.eval_loss


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TransformersTrainerConfig(model="x", batch_size=0)


def test_dpo_on_real_preference_pairs(raw_dir: Path, tiny_model: Path) -> None:
    pytest.importorskip("trl")
    import json

    from entropy_assets.records import preference_parts
    from entropy_assets.training.transformers_backend import train_dpo

    records = json.loads((raw_dir / "llamafactory_dpo_en_demo.json").read_text(encoding="utf-8"))
    pairs = [preference_parts(r) for r in records[:24]]
    assert pairs[0][1] == records[0]["chosen"]["value"] and pairs[0][2] == records[0]["rejected"]["value"]
    config = TransformersTrainerConfig(model=str(tiny_model), context=128, batch_size=4, max_steps=6, device="cpu")
    metrics = train_dpo(pairs[:16], pairs[16:], config)
    assert metrics.loss_kind == "dpo" and metrics.steps == 6
    # DPO starts at ln 2 (policy equals reference) and the loss is finite throughout.
    assert metrics.step_losses[0] == pytest.approx(math.log(2), abs=0.05)
    assert metrics.eval_loss is not None and math.isfinite(metrics.eval_loss)
