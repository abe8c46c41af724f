"""Every dataset type a trainer reads (TRL's, OpenAI's, LLaMA-Factory's) and the column names real datasets use:
each read on records cut from the real files in ../shared/data/raw, each rendering to the canonical text of its
Alpaca, ShareGPT or messages twin; and the canonical text of every shape understood before, pinned to its bytes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from entropy_assets.records import (
    SHAPES,
    RecordError,
    canonical_text,
    detect_format,
    preference_parts,
    read_record,
    training_text,
)
from entropy_assets.sources import load_pool


def _json(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def _text(record: dict[str, Any]) -> str:
    return read_record(record).text


# The canonical text of every raw file as the code before column mappings gave it: records kept, the sha256 of
# their texts joined by NUL, and the formats counted. No existing pool, score or subset version may move.
PINNED_FILES: dict[str, tuple[int, str, dict[str, int]]] = {
    "alpaca52k_en_part01_00000-03252.json": (
        3252,
        "7526de72262730739cb897b56e789fcc340648598ff2269e34e7ef36faa7e2e1",
        {"alpaca": 3252},
    ),
    "alpaca52k_en_part18_51009-52002.json": (
        993,
        "c18def3afa835b40c3f8cb81cc6d851e726a5e52e58fad1744110100b7ebadb1",
        {"alpaca": 993},
    ),
    "alpaca_eval_outputs_alpaca-7b.json": (
        805,
        "51d8ec922e83addfe7e75283ee997be2d7ea879c7536e7396e377561b8c29c2b",
        {"alpaca": 805},
    ),
    "code_alpaca_2k.json": (2017, "f37de07391faf33e24cc4da07e524434135ac73dfd1f734a234dcc5be5679a1c", {"alpaca": 2017}),
    "dolly15k_sample_templated.jsonl": (
        151,
        "480097825d1ada4e3525b4a3d1719cead8cd8f5270e66df3e42e01f1b38eeec7",
        {"alpaca": 151},
    ),
    "fastchat_dummy_conversation.json": (
        500,
        "0343612f3d6ed5ac30f3d833d2e01dada6f863cadc2aada1b083d5a66c4ad0f9",
        {"sharegpt": 500},
    ),
    "fastchat_mt_bench_questions.jsonl": (
        80,
        "53cd52f96d570ae9f72cde22aa69907baddbc068cb21c97a895c91691b8732fe",
        {"messages": 80},
    ),
    "llamafactory_alpaca_zh_demo.json": (
        1000,
        "78199bf1e1a809b5614ab8ab4c6bc44ff11173a7505bfaa212d8bf5bdcf00cca",
        {"alpaca": 1000},
    ),
    "llamafactory_dpo_en_demo.json": (
        300,
        "7b61747312209e8c37c5b515bb7c2e71b4ab6531c76c0803e149ea660ec6c3e3",
        {"preference": 300},
    ),
    "llamafactory_glaive_toolcall_en_demo.json": (
        300,
        "9a61368041d336a1f02270909b9b112d8008ed7fb547c5a144aaac414373c1b8",
        {"sharegpt": 300},
    ),
    "llamafactory_identity.json": (
        91,
        "02677aacfdc55241332956c541279e39c2ac2a78fe49095d58384ec4bbe72a33",
        {"alpaca": 91},
    ),
    "pretrain_c4_demo.jsonl": (300, "6ef568d28aeb0c34380b520b7fed73a88ca036ee7e20b6ed61095122e73a778d", {"text": 300}),
    "pretrain_wiki_demo.txt": (30, "b67e5e9dc49863d644233847c4b9a294e0e9d140739dffb4babdceeb6735675c", {"text": 30}),
    "self_instruct_seed_tasks.jsonl": (
        175,
        "1c2d776e99cf2238e5eb2341d5fa9fa03cbf55032309e2ff94a0428404ceb949",
        {"alpaca": 175},
    ),
    "self_instruct_user_oriented_instructions.jsonl": (
        252,
        "eac486bf0daa1a3f8e7fffcc791f11d5f8b46e4de8a8ab5077589df7edff2506",
        {"alpaca": 252},
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED_FILES))
def test_the_canonical_text_of_every_real_file_is_byte_identical_to_before(raw_dir: Path, name: str) -> None:
    frame = load_pool(raw_dir / name).frame
    digest = hashlib.sha256("\0".join(frame["text"].to_list()).encode()).hexdigest()
    assert (frame.height, digest, dict(Counter(frame["format"].to_list()))) == PINNED_FILES[name]


# Records of every shape understood before, at its corners, with the format and canonical text that code gave.
PINNED_RECORDS: list[tuple[dict[str, Any], str, str]] = [
    ({"instruction": "Sum.", "input": "1, 2", "output": "3", "id": 7}, "alpaca", "user: Sum.\n1, 2\nassistant: 3"),
    ({"prompt": "P", "response": "R", "text": "ignored as a text record"}, "alpaca", "user: P\nassistant: R"),
    (
        {"instruction": "I", "prompt": "P", "question": "Q", "output": "O", "response": "R", "answer": "A"},
        "alpaca",
        "user: I\nassistant: O",
    ),
    (
        {"instruction": None, "question": "Q", "answer": "A", "system": None, "history": None},
        "alpaca",
        "user: Q\nassistant: A",
    ),
    (
        {"system": "S", "history": [["h1", "a1"]], "question": "Q", "input": "X", "answer": "A"},
        "alpaca",
        "system: S\nuser: h1\nassistant: a1\nuser: Q\nX\nassistant: A",
    ),
    (
        {"instruction": "I", "instances": [{"input": "", "output": "o1"}, {"input": "i2", "output": "o2"}]},
        "alpaca",
        "user: I\nassistant: o1\nuser: i2\nassistant: o2",
    ),
    ({"instruction": "I", "instances": []}, "alpaca", "user: I"),
    (
        {
            "conversation": [{"from": "human", "value": "a"}, {"from": "bard", "value": "b"}],
            "system": "S",
            "tools": [{"name": "f"}],
        },
        "sharegpt",
        'system: S\ntools: [{"name": "f"}]\nuser: a\nassistant: b',
    ),
    (
        {
            "conversations": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "f"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
                {"role": "assistant", "content": "It is 42.", "weight": 1},
            ]
        },
        "sharegpt",
        'user: a\nassistant: [{"id": "c1", "function": {"name": "f"}}]\ntool: 42\nassistant: It is 42.',
    ),
    (
        {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a", "weight": 0},
            ],
            "tools": [],
            "text": "not this",
        },
        "messages",
        "system: S\nuser: u\nassistant: a",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, "plain", {"type": "image_url"}]}]},
        "messages",
        "user: look\nplain",
    ),
    ({"turns": ["first", "second"], "system": "S"}, "messages", "system: S\nuser: first\nuser: second"),
    ({"text": "T", "content": "C"}, "text", "T"),
    ({"content": "only content"}, "text", "only content"),
    ({"text": None, "content": "content when text is null"}, "text", "content when text is null"),
    (
        {"prompt": "P", "chosen": "C", "rejected": "R", "input": "X", "history": [["h", "a"]], "system": "S"},
        "preference",
        "system: S\nuser: P\nchosen: C\nrejected: R",
    ),
    (
        {
            "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
            "chosen": [{"role": "assistant", "content": "C"}],
            "rejected": [{"role": "assistant", "content": "R"}],
        },
        "preference",
        "system: S\nuser: U\nchosen: C\nrejected: R",
    ),
    (
        {"prompt": "P", "conversations": [{"from": "human", "value": "H"}], "chosen": "C", "rejected": "R"},
        "preference",
        "user: P\nchosen: C\nrejected: R",
    ),
    (
        {
            "conversations": [{"from": "human", "value": "H"}],
            "messages": [{"role": "user", "content": "M"}],
            "chosen": {"from": "gpt", "value": "C"},
            "rejected": {"from": "gpt", "value": "R"},
            "system": "S",
        },
        "preference",
        "system: S\nuser: H\nchosen: C\nrejected: R",
    ),
    (
        {
            "messages": [{"role": "user", "content": "M"}],
            "chosen": [
                {"role": "assistant", "content": "C1"},
                {"role": "user", "content": "more"},
                {"role": "assistant", "content": "C2"},
            ],
            "rejected": "R",
        },
        "preference",
        "user: M\nchosen: C1\nmore\nC2\nrejected: R",
    ),
    (
        {"instruction": "I", "input": "X", "history": [["h", "a"]], "chosen": "C", "rejected": "R", "system": "S"},
        "preference",
        "system: S\nuser: h\nassistant: a\nuser: I\nX\nchosen: C\nrejected: R",
    ),
    (
        {
            "system": "S",
            "chosen": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "C"}],
            "rejected": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "R"}],
        },
        "preference",
        "user: U\nchosen: C\nrejected: R",
    ),
    ({"chosen": "same", "rejected": "same"}, "preference", "chosen: same\nrejected: same"),
    ({"instruction": "I", "output": "O", "messages": [{"role": "user", "content": "M"}]}, "messages", "user: M"),
]


@pytest.mark.parametrize(("record", "fmt", "text"), PINNED_RECORDS)
def test_every_shape_understood_before_keeps_its_format_and_bytes(record: dict[str, Any], fmt: str, text: str) -> None:
    assert detect_format(record) == fmt
    assert canonical_text(record, fmt) == text  # type: ignore[arg-type]


def test_an_alpaca_record_and_its_prompt_completion_twin_have_the_same_bytes(raw_dir: Path) -> None:
    alpaca = _json(raw_dir / "alpaca52k_en_part18_51009-52002.json")[0]
    assert alpaca["input"] == ""
    twin = {"prompt": alpaca["instruction"], "completion": alpaca["output"]}
    assert (detect_format(alpaca), detect_format(twin)) == ("alpaca", "prompt_completion")
    text = _text(alpaca)
    assert _text(twin).encode("utf-8") == text.encode("utf-8")
    assert text == f"user: {alpaca['instruction']}\nassistant: {alpaca['output']}"
    assert read_record(twin).prompt_and_completion() == (
        f"user: {alpaca['instruction']}",
        f"assistant: {alpaca['output']}",
    )


def test_one_exchange_as_alpaca_prompt_completion_messages_and_sharegpt_is_one_text(raw_dir: Path) -> None:
    for alpaca in _json(raw_dir / "code_alpaca_2k.json")[:50]:
        prompt = "\n".join(part for part in (alpaca["instruction"], alpaca["input"]) if part.strip())
        user = {"role": "user", "content": prompt}
        assistant = {"role": "assistant", "content": alpaca["output"]}
        twins = [
            alpaca,
            {"prompt": prompt, "completion": alpaca["output"]},
            {"prompt": [user], "completion": [assistant]},
            {"messages": [user, assistant]},
            {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": alpaca["output"]}]},
        ]
        assert len({_text(twin) for twin in twins}) == 1


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (lambda r: {"query": r["instruction"], "response": r["output"]}, "alpaca"),  # MetaMath's GSM8K
        (lambda r: {"problem": r["instruction"], "solution": r["output"]}, "alpaca"),  # MATH, NuminaMath
        (lambda r: {"input": r["instruction"], "output": r["output"]}, "alpaca"),
        (lambda r: {"instruction": r["instruction"], "response": r["output"]}, "alpaca"),
        (lambda r: {"Instruction": r["instruction"], "Output": r["output"]}, "alpaca"),  # WizardLM's test set
        (lambda r: {"PROMPT": r["instruction"], "Completion": r["output"]}, "prompt_completion"),
    ],
)
def test_the_column_names_real_datasets_use_read_as_their_alpaca_twin(raw_dir: Path, make: Any, fmt: str) -> None:
    records = [r for r in _json(raw_dir / "alpaca52k_en_part18_51009-52002.json")[:200] if not r["input"]]
    for record in records:
        assert detect_format(make(record)) == fmt
        assert _text(make(record)) == _text(record)


def test_a_question_alone_is_prompt_only_and_has_no_completion(raw_dir: Path) -> None:
    record = _json(raw_dir / "alpaca_eval_outputs_alpaca-7b.json")[0]
    for question in ({"question": record["instruction"]}, {"prompt": record["instruction"]}):
        read = read_record(question)
        assert (read.format, read.text) == ("prompt_only", f"user: {record['instruction']}")
        assert read.prompt_and_completion() is None
    conversational = read_record({"prompt": [{"role": "user", "content": record["instruction"]}]})
    assert (conversational.format, conversational.text) == ("prompt_only", f"user: {record['instruction']}")


def test_a_system_column_and_llamafactory_history_render_as_the_conversation(raw_dir: Path) -> None:
    conversation = next(r for r in _json(raw_dir / "fastchat_dummy_conversation.json") if len(r["conversations"]) >= 6)
    turns = [turn["value"] for turn in conversation["conversations"]]
    pairs = [[turns[i], turns[i + 1]] for i in range(0, len(turns) - 2, 2)]
    alpaca = {"system": "Be brief.", "instruction": turns[-2], "input": "", "output": turns[-1], "history": pairs}
    sharegpt = {"system": "Be brief.", "conversations": conversation["conversations"]}
    completion = {"system": "Be brief.", "prompt": turns[-2], "completion": turns[-1], "history": pairs}
    assert _text(alpaca) == _text(sharegpt) == _text(completion)
    assert _text(alpaca).startswith("system: Be brief.\nuser: ")


def test_unpaired_preference_reads_prompt_and_completion_and_keeps_the_label_out_of_the_text(raw_dir: Path) -> None:
    pair = next(r for r in _json(raw_dir / "llamafactory_dpo_en_demo.json") if len(r["conversations"]) == 1)
    prompt = pair["conversations"][0]["value"]
    good = {"prompt": prompt, "completion": pair["chosen"]["value"], "label": True}
    bad = {"prompt": prompt, "completion": pair["rejected"]["value"], "label": False}
    for record, label in ((good, True), (bad, False)):
        read = read_record(record)
        assert (read.format, dict(read.labels)) == ("unpaired_preference", {"label": label})
        assert "True" not in read.text and "False" not in read.text
        assert read.text == _text({"instruction": prompt, "output": record["completion"]})


def test_stepwise_supervision_renders_its_steps_as_one_answer_and_keeps_its_labels(raw_dir: Path) -> None:
    record = next(
        r for r in _json(raw_dir / "code_alpaca_2k.json") if r["output"].count("\n") >= 2 and "\n\n" not in r["output"]
    )
    steps = record["output"].split("\n")
    stepwise = {"prompt": record["instruction"], "completions": steps, "labels": [True] * (len(steps) - 1) + [False]}
    read = read_record(stepwise)
    assert read.format == "stepwise_supervision"
    assert read.text == _text({"instruction": record["instruction"], "output": record["output"]})
    assert read.labels == {"labels": stepwise["labels"]}


def test_implicit_and_explicit_prompt_preference_and_openai_dpo_render_alike(raw_dir: Path) -> None:
    pair = next(r for r in _json(raw_dir / "llamafactory_dpo_en_demo.json") if len(r["conversations"]) == 1)
    user = {"role": "user", "content": pair["conversations"][0]["value"]}
    chosen = {"role": "assistant", "content": pair["chosen"]["value"]}
    rejected = {"role": "assistant", "content": pair["rejected"]["value"]}
    explicit = {"prompt": [user], "chosen": [chosen], "rejected": [rejected]}
    implicit = {"chosen": [user, chosen], "rejected": [user, rejected]}
    openai = {
        "input": {"messages": [user], "tools": []},
        "preferred_output": [chosen],
        "non_preferred_output": [rejected],
    }
    texts = {_text(record) for record in (pair, explicit, implicit, openai)}
    assert len(texts) == 1
    assert {detect_format(record) for record in (explicit, implicit, openai)} == {"preference"}
    assert preference_parts(openai) == preference_parts(pair)
    assert training_text(openai, "preference") == training_text(pair, "preference")


def test_openai_chat_records_with_tool_calls_and_weights_keep_weights_out_of_the_text(raw_dir: Path) -> None:
    """glaive's tool-calling conversation (LLaMA-Factory) rewritten as OpenAI's fine-tuning format."""
    glaive = next(
        r
        for r in _json(raw_dir / "llamafactory_glaive_toolcall_en_demo.json")
        if [t["from"] for t in r["conversations"]][:5] == ["human", "gpt", "human", "function_call", "observation"]
    )
    turns = glaive["conversations"]
    call = json.loads(turns[3]["value"])
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
    }
    messages = [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": turns[0]["value"]},
        {"role": "assistant", "content": turns[1]["value"], "weight": 0},
        {"role": "user", "content": turns[2]["value"]},
        {"role": "assistant", "tool_calls": [tool_call], "content": None},
        {"role": "tool", "tool_call_id": "call_1", "content": turns[4]["value"]},
        {"role": "assistant", "content": turns[5]["value"], "weight": 1},
    ]
    record = {"messages": messages, "tools": json.loads(glaive["tools"]), "parallel_tool_calls": False}
    read = read_record(record)
    assert read.format == "messages"
    assert read.labels == {"weights": [None, None, 0, None, None, None, 1]}
    lines = read.text.split("\n")
    assert lines[0].startswith('tools: [{"name": ')  # the tool schemas come first, as with ShareGPT's tools
    assert lines[1] == "system: You can call tools."
    assert any(
        line.startswith(f'assistant: [{{"id": "call_1", "type": "function", "function": {{"name": "{call["name"]}"')
        for line in lines
    )
    assert any(line.startswith("tool: ") for line in lines)
    assert "weight" not in read.text
    assert read.prompt_and_completion() == (
        read.text.rsplit("\nassistant: ", 1)[0],
        f"assistant: {turns[5]['value']}",
    )


def test_a_record_that_fits_two_shapes_takes_the_first_in_precedence_order() -> None:
    both = {"prompt": "P", "completion": "C", "label": True, "text": "a text column beside"}
    assert detect_format(both) == "text"  # the shapes understood before come first
    assert detect_format({"prompt": "P", "completion": "C", "label": True}) == "unpaired_preference"
    assert detect_format({"prompt": "P", "completion": "C", "response": "R"}) == "alpaca"
    assert detect_format({"prompt": "P", "completion": "C", "chosen": "x", "rejected": "y"}) == "preference"
    assert detect_format({"prompt": "P", "completions": ["a", "b"], "labels": [1, 0]}) == "stepwise_supervision"
    formats = [shape.format for shape in SHAPES]
    assert formats.index("text") < formats.index("prompt_completion") < formats.index("prompt_only")


def test_names_as_written_win_over_names_that_differ_only_in_case() -> None:
    assert _text({"Instruction": "upper", "instruction": "lower", "output": "O"}) == "user: lower\nassistant: O"
    assert detect_format({"text": "T", "Messages": [{"role": "user", "content": "m"}]}) == "text"


def test_a_forced_format_reads_the_record_as_that_format_or_says_which_field_is_missing() -> None:
    record = {"prompt": "P", "completion": "C", "text": "T"}
    assert canonical_text(record, "prompt_completion") == "user: P\nassistant: C"
    assert canonical_text(record, "text") == "T"
    with pytest.raises(RecordError, match="field 'chosen' is missing"):
        canonical_text(record, "preference")


def test_every_documented_example_reads_as_its_shape() -> None:
    for shape in SHAPES:
        if shape.example:
            assert detect_format(shape.example) == shape.format
            assert read_record(shape.example).text.strip()


def test_records_of_many_fields_are_matched_without_growing_the_cache() -> None:
    """Matches are kept by the set of fields that hold a value; a hostile file of records with thousands of distinct
    fields each must not fill memory with them."""
    from entropy_assets.records.shapes import _exact_fit_index

    before = _exact_fit_index.cache_info().currsize
    for index in range(50):
        record = {f"field_{index}_{key}": key for key in range(2000)}
        record["TEXT"] = f"document {index}"
        assert read_record(record).text == f"document {index}"
    assert _exact_fit_index.cache_info().currsize == before
