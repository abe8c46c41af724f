"""What a trainer reads of each sample: the text, and where its record has them, the prompt and the completion
apart (through the column mapping the pool was read with), in the Pipes trainer's JSON lines too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entropy_assets.records import ColumnMapping, read_record
from entropy_assets.sources import SourceColumns, load_pool
from entropy_assets.stages import TrainingSettings
from entropy_assets.stages.training import _train_pipes, evaluation_examples, training_examples
from entropy_assets.training.examples import TrainingExample
from entropy_assets.training.pipes import FINISH_MESSAGE


def _json(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def test_trainers_get_prompt_and_completion_apart_where_a_record_has_them(raw_dir: Path, tmp_path: Path) -> None:
    alpaca = _json(raw_dir / "alpaca52k_en_part18_51009-52002.json")[:5]
    records = [{"ask": r["instruction"], "reply": r["output"]} for r in alpaca[:5]]
    pair = _json(raw_dir / "llamafactory_dpo_en_demo.json")[0]
    (tmp_path / "data").mkdir()
    mapped = _write_jsonl(tmp_path / "data" / "a_mapped.jsonl", records)
    _write_jsonl(tmp_path / "data" / "b_usual.jsonl", [pair, {"text": "a document"}])
    columns = SourceColumns.of(by_path={str(mapped): ColumnMapping(prompt="ask", response="reply")})
    frame = load_pool(tmp_path / "data", columns=columns).frame
    examples, loss_kind = training_examples(frame, columns)
    assert loss_kind == "causal_lm_prompt_chosen"
    first = examples[0]
    assert (first.prompt, first.completion) == (
        f"user: {alpaca[0]['instruction']}",
        f"assistant: {alpaca[0]['output']}",
    )
    assert first.text == frame["text"][0]
    preference = read_record(pair)
    assert (examples[5].prompt, examples[5].completion) == preference.prompt_and_completion()
    assert examples[5].text == preference.training_text() and examples[6].prompt is None
    evaluation = evaluation_examples(frame, columns)
    assert evaluation[5].text == frame["text"][5] and evaluation[5].prompt is None  # both responses: no split

    sent: dict[str, list[dict[str, str]]] = {}

    def launch(command: Any, extras: dict[str, Any]) -> list[dict[str, Any]]:
        for key in ("train_path", "eval_path"):
            sent[key] = [json.loads(line) for line in Path(extras[key]).read_text(encoding="utf-8").splitlines()]
        return [{"type": FINISH_MESSAGE, "first_epoch_loss": 1.0}]

    training = TrainingSettings(backend="pipes", command=["trainer"], eval_samples=1)
    _train_pipes(launch, training, examples, evaluation, "zip", 7)
    assert sent["train_path"][0] == {"text": first.text, "prompt": first.prompt, "completion": first.completion}
    assert sent["train_path"][6] == {"text": "a document"}


def test_an_example_is_its_prompt_a_newline_and_its_completion() -> None:
    example = TrainingExample("user: a\nassistant: b", "user: a", "assistant: b")
    assert TrainingExample.from_json(example.to_json()) == example
    assert TrainingExample.from_json({"text": "plain"}).to_json() == {"text": "plain"}
    with pytest.raises(ValueError, match="both a prompt and a completion, or neither"):
        TrainingExample("user: a\nassistant: b", "user: a")
    with pytest.raises(ValueError, match="its prompt, a newline and its completion"):
        TrainingExample("user: a\nassistant: b", "user: x", "assistant: b")
