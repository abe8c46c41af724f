"""The transformers backend on a tiny, randomly initialized GPT-2 built from a config: no download."""

import json
import logging
import math
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from entropy_assets.stages import TrainingSettings  # noqa: E402
from entropy_assets.stages.training import _train_transformers  # noqa: E402
from entropy_assets.training.examples import TrainingExample  # noqa: E402
from entropy_assets.training.metrics import RunMetrics  # noqa: E402
from entropy_assets.training.transformers_backend import (  # noqa: E402
    LoraAdapterConfig,
    TransformersTrainerConfig,
    train_transformers,
)


@pytest.fixture(scope="module")
def texts(alpaca: list[str]) -> list[str]:
    return alpaca[:300]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """A tiny model trains faster on one thread, and does not stall when other processes hold the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_completion_only_loss_predicts_no_prompt_token(texts: list[str], tiny_model: Path) -> None:
    """Alpaca's texts are a prompt, a newline and a completion: with completion_only_loss the prompt's tokens are
    labelled -100 (the loss skips them), the completion's are themselves, and the run's L is on completions."""
    from entropy_assets.training.transformers_backend import IGNORED, _windows

    prompts = [text.split("\nassistant: ", 1)[0] for text in texts]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    windows, labels = _windows(tokenizer, texts[:20], 64, prompts[:20])
    assert labels is not None and windows.shape == labels.shape
    head = tokenizer(prompts[0] + "\n", add_special_tokens=False)["input_ids"]
    assert labels[0, : len(head)].tolist() == [IGNORED] * len(head)
    assert labels[0, len(head) : len(head) + 5].tolist() == windows[0, len(head) : len(head) + 5].tolist()
    masked = labels == IGNORED
    assert 0 < int(masked.sum()) < labels.numel() and bool((labels[~masked] == windows[~masked]).all())
    config = TransformersTrainerConfig(model=str(tiny_model), context=64, batch_size=8, max_steps=4, device="cpu")
    whole = train_transformers(texts[:100], texts[200:], config)
    only = TransformersTrainerConfig(**{**config.__dict__, "completion_only_loss": True})
    completions = train_transformers(
        texts[:100], texts[200:], only, train_prompts=prompts[:100], eval_prompts=prompts[200:]
    )
    assert all(math.isfinite(loss) for loss in completions.step_losses)
    assert completions.step_losses != whole.step_losses and completions.eval_loss != whole.eval_loss


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TransformersTrainerConfig(model="x", batch_size=0)


def test_dpo_on_real_preference_pairs(raw_dir: Path, tiny_model: Path) -> None:
    pytest.importorskip("trl")
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


# The GPU configuration of docs/gpu_training.md (examples/gpu_training.yaml), run on the CPU: the tiny GPT-2 in place
# of Qwen, float32, short sequences and few steps, and GPT-2's counterparts of Qwen's projections as LoRA targets,
# with the output layer too: the tiny model is untrained, and through frozen random embeddings its logits barely move.

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpu_training.yaml"
CPU = {"device": "cpu", "dtype": "float32", "context": 64, "batch_size": 2, "learning_rate": 1e-2, "eval_sequences": 8}
GPT2_TARGETS = ["c_attn", "c_proj", "c_fc", "lm_head"]
"""GPT-2's attention projections (c_attn: q, k, v; attn.c_proj: o), MLP (c_fc: up; mlp.c_proj: down) and output."""
pytestmark = pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`")  # lm_head shares wte, frozen


def gpu_example() -> dict[str, Any]:
    """The ``training:`` mapping that the documentation shows."""
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["training"]


def on_cpu(model: Path, steps: int = 12, **overrides: Any) -> TrainingSettings:
    """The documented settings with ``model`` and the GPU-only settings replaced for a CPU run; ``overrides``
    replace the ``transformers`` mapping's entries (``lora`` entries are merged into the example's adapter)."""
    training = gpu_example()
    trainer = {**training["transformers"], **CPU}
    trainer["lora"] = {**trainer["lora"], "target_modules": GPT2_TARGETS, **overrides.pop("lora", {})}
    trainer.update(overrides)
    return TrainingSettings(**{**training, "model": str(model), "steps": steps, "transformers": trainer})


def pipeline_run(training: TrainingSettings, texts: list[str]) -> RunMetrics:
    """A run through the function the pipeline's training step calls for the transformers backend."""
    train, evaluation = ([TrainingExample(text) for text in part] for part in (texts[:200], texts[200:]))
    return _train_transformers(logging.getLogger("test"), training, train, evaluation, "causal_lm")


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The models the backend loads, kept to inspect after training (the backend trains them in place)."""
    models: list[Any] = []
    load = transformers.AutoModelForCausalLM.from_pretrained

    def keep(*args: Any, **kwargs: Any) -> Any:
        models.append(load(*args, **kwargs))
        return models[-1]

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", keep)
    return models


@pytest.fixture(scope="module")
def still_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without dropout, so that runs differing only in how a step is split compare exactly."""
    folder = tmp_path_factory.mktemp("tiny-gpt2-still")
    for path in tiny_model.iterdir():
        shutil.copy(path, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config |= {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_the_documented_gpu_settings_train_only_a_lora_adapter(
    texts: list[str], tiny_model: Path, loaded: list[Any]
) -> None:
    training = on_cpu(tiny_model, steps=30)
    assert training.transformers["gradient_accumulation"] == 4 and training.transformers["lora"]["r"] == 16
    metrics = pipeline_run(training, texts)
    assert metrics.steps == 30 and metrics.tokens == 30 * 2 * 4 * 64
    assert all(math.isfinite(loss) for loss in metrics.step_losses)
    # Untrained, the model is about uniform (ln 400 = 5.99; its batches of 8 sequences spread over 0.09).
    assert sum(metrics.step_losses[-5:]) / 5 < metrics.step_losses[0] - 0.3
    assert metrics.eval_loss is not None and metrics.eval_loss < metrics.step_losses[0] - 0.3

    trained = dict(loaded[0].named_parameters())
    trainable = {name for name, parameter in trained.items() if parameter.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    # r x (in + out) for each layer's c_attn (w -> 3w), attn.c_proj (w -> w), c_fc (w -> 4w), mlp.c_proj (4w -> w),
    # and for lm_head (w -> vocabulary).
    width, layers, vocabulary = (loaded[0].config.n_embd, loaded[0].config.n_layer, loaded[0].config.vocab_size)
    assert sum(trained[name].numel() for name in trainable) == 16 * (16 * width * layers + width + vocabulary)
    original = transformers.AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    for name, parameter in trained.items():
        if name not in trainable:
            assert torch.equal(parameter.detach(), original[name.replace(".base_layer", "")]), name
    assert all(trained[name].abs().sum() > 0 for name in trainable if ".lora_B." in name)  # B starts at zero


def test_gradient_accumulation_takes_the_same_steps_over_more_tokens(texts: list[str], still_model: Path) -> None:
    still = {"steps": 8, "lora": {"dropout": 0.0}}
    whole = pipeline_run(on_cpu(still_model, batch_size=4, gradient_accumulation=1, **still), texts)
    split = pipeline_run(on_cpu(still_model, batch_size=2, gradient_accumulation=2, **still), texts)
    double = pipeline_run(on_cpu(still_model, batch_size=4, gradient_accumulation=2, **still), texts)
    assert whole.steps == split.steps == double.steps == 8
    assert whole.tokens == split.tokens == 8 * 4 * 64 and double.tokens == 2 * whole.tokens
    # Two micro-batches of 2 make the step one batch of 4 makes: the same mean loss and the same update.
    assert split.step_losses == pytest.approx(whole.step_losses, rel=1e-4)
    assert split.eval_loss == pytest.approx(whole.eval_loss, rel=1e-4)
    assert double.step_losses[1:] != pytest.approx(whole.step_losses[1:], rel=1e-3)  # other data from step 2


def test_gradient_checkpointing_changes_memory_not_losses(
    texts: list[str], tiny_model: Path, loaded: list[Any]
) -> None:
    stored = pipeline_run(on_cpu(tiny_model, steps=4), texts)
    recomputed = pipeline_run(on_cpu(tiny_model, steps=4, gradient_checkpointing=True), texts)
    assert [checkpointing(model) for model in loaded] == [False, True]
    assert recomputed.step_losses == pytest.approx(stored.step_losses, rel=1e-5)


def checkpointing(model: Any) -> bool:
    """Whether ``model`` recomputes its activations (transformers 5 renamed the flag)."""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(model.is_gradient_checkpointing if flag is None else flag)


def test_bfloat16_keeps_frozen_weights_in_bfloat16_and_the_adapter_in_float32(
    texts: list[str], tiny_model: Path, loaded: list[Any]
) -> None:
    exact = pipeline_run(on_cpu(tiny_model, steps=4), texts)
    mixed = pipeline_run(on_cpu(tiny_model, steps=4, dtype="bfloat16"), texts)
    parameters = list(loaded[1].parameters())
    assert {p.dtype for p in parameters if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in parameters if not p.requires_grad} == {torch.bfloat16}
    assert all(math.isfinite(loss) for loss in mixed.step_losses)
    assert mixed.step_losses == pytest.approx(exact.step_losses, abs=0.05)


def test_lora_without_peft_says_how_to_install_it(
    texts: list[str], tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now fails
    with pytest.raises(ImportError, match=r"pip install 'entropy-assets\[transformers\]'"):
        pipeline_run(on_cpu(tiny_model, steps=1), texts)


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ({"dtype": "half"}, "dtype"),
        ({"gradient_accumulation": 0}, "gradient_accumulation"),
        ({"gradient_accumulation": 1.5}, "gradient_accumulation"),
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing"),
        ({"lora": "q_proj"}, "lora"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"lora": {"rank": 8}}, "lora.rank"),
        ({"lora": {"alpha": -1}}, "lora.alpha"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout"),
        ({"lora": {"target_modules": "q_proj"}}, "lora.target_modules"),
        ({"lora": {"target_modules": []}}, "lora.target_modules"),
    ],
)
def test_bad_gpu_settings_name_the_field(setting: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"TransformersTrainerConfig\.{re.escape(field)}\b"):
        TransformersTrainerConfig(model="x", **setting)


def test_the_gpu_guide_shows_the_tested_example_verbatim() -> None:
    guide = EXAMPLE.parents[1] / "docs" / "gpu_training.md"
    assert f"```yaml\n{EXAMPLE.read_text(encoding='utf-8')}```" in guide.read_text(encoding="utf-8")


def test_a_lora_mapping_becomes_a_frozen_adapter_config() -> None:
    lora = gpu_example()["transformers"]["lora"]
    config = TransformersTrainerConfig(model="x", lora=lora)
    assert config.lora == LoraAdapterConfig(r=16, alpha=32, dropout=0.05, target_modules=tuple(lora["target_modules"]))
    assert hash(config) == hash(TransformersTrainerConfig(model="x", lora=LoraAdapterConfig(**lora)))


def test_dpo_trains_a_lora_adapter_with_accumulated_steps_and_checkpointing(raw_dir: Path, tiny_model: Path) -> None:
    pytest.importorskip("trl")
    from entropy_assets.records import preference_parts
    from entropy_assets.training.transformers_backend import train_dpo

    records = json.loads((raw_dir / "llamafactory_dpo_en_demo.json").read_text(encoding="utf-8"))
    pairs = [preference_parts(r) for r in records[:24]]
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["c_attn"]}
    config = TransformersTrainerConfig(
        model=str(tiny_model),
        context=128,
        batch_size=2,
        gradient_accumulation=2,
        gradient_checkpointing=True,
        max_steps=4,
        device="cpu",
        lora=lora,
    )
    metrics = train_dpo(pairs[:16], pairs[16:], config)
    assert metrics.loss_kind == "dpo" and metrics.steps == 4
    # The reference is the model without its adapter, which starts at zero: the first loss is ln 2.
    assert metrics.step_losses[0] == pytest.approx(math.log(2), abs=0.05)
    assert all(math.isfinite(loss) for loss in metrics.step_losses)
    assert metrics.eval_loss is not None and math.isfinite(metrics.eval_loss)
