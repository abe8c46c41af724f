"""Record formats -> canonical text, on real records from ../shared/data/raw and tests/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entropy_assets.records import FORMATS, RecordError, canonical_text, detect_format, normalize_role


def _json(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _text(record: dict[str, Any]) -> str:
    return canonical_text(record, detect_format(record))


@pytest.fixture(scope="module")
def mixed(fixture_dir: Path) -> list[dict[str, Any]]:
    return _jsonl(fixture_dir / "mixed_formats.jsonl")


def test_formats_lists_todays_five_formats_first_then_trls_dataset_types() -> None:
    assert FORMATS == (
        "alpaca",
        "sharegpt",
        "messages",
        "preference",
        "text",
        "prompt_completion",
        "prompt_only",
        "unpaired_preference",
        "stepwise_supervision",
    )


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("alpaca52k_en_part18_51009-52002.json", "alpaca"),
        ("code_alpaca_2k.json", "alpaca"),
        ("alpaca_eval_outputs_alpaca-7b.json", "alpaca"),
        ("llamafactory_identity.json", "alpaca"),
        ("dolly15k_sample_templated.jsonl", "alpaca"),
        ("self_instruct_seed_tasks.jsonl", "alpaca"),
        ("self_instruct_user_oriented_instructions.jsonl", "alpaca"),
        ("fastchat_dummy_conversation.json", "sharegpt"),
        ("llamafactory_glaive_toolcall_en_demo.json", "sharegpt"),
        ("llamafactory_dpo_en_demo.json", "preference"),
        ("fastchat_mt_bench_questions.jsonl", "messages"),
        ("fastchat_vicuna_bench_questions.jsonl", "messages"),
        ("pretrain_c4_demo.jsonl", "text"),
    ],
)
def test_every_record_of_a_real_file_is_detected_as_its_format(raw_dir: Path, file_name: str, expected: str) -> None:
    path = raw_dir / file_name
    records = _jsonl(path) if path.suffix == ".jsonl" else _json(path)
    assert {detect_format(record) for record in records} == {expected}
    assert all(_text(record).strip() for record in records)


def test_alpaca_puts_instruction_and_input_in_one_user_turn(raw_dir: Path) -> None:
    record = _json(raw_dir / "alpaca52k_en_part18_51009-52002.json")[1]
    assert _text(record) == (
        "user: Find the correct facts from the given list and delete the incorrect ones.\n"
        "The capital of India is Mumbai, California was the first state of USA, "
        "Apple is the symbol of Microsoft.\n"
        "assistant: The capital of India is New Delhi, California was the first state of USA, "
        "Apple is the symbol of Apple."
    )


def test_alpaca_keeps_input_placeholders_as_content(raw_dir: Path) -> None:
    record = _json(raw_dir / "alpaca52k_en_part18_51009-52002.json")[219]
    assert record["input"] == "No input"
    assert _text(record).startswith(
        "user: Write an article to explain why people need to start eating healthy foods\nNo input\n"
        "assistant: Eating healthy food"
    )


def test_alpaca_without_input_has_no_blank_line(raw_dir: Path) -> None:
    record = _json(raw_dir / "alpaca52k_en_part18_51009-52002.json")[0]
    assert _text(record).startswith("user: Generate a story about a conflict between two siblings.\nassistant: ")


def test_empty_output_leaves_only_the_user_turn(raw_dir: Path) -> None:
    empty = [r for r in _json(raw_dir / "code_alpaca_2k.json") if r["output"] == ""]
    assert len(empty) == 2
    text = _text(empty[1])
    assert text == "user: Determine the largest value in an array of integers.\n[1, 2, 20, 15, 10]"
    assert "assistant" not in text


def test_alpaca_eval_bookkeeping_never_enters_the_text(raw_dir: Path) -> None:
    records = _json(raw_dir / "alpaca_eval_outputs_alpaca-7b.json")
    texts = [_text(record) for record in records]
    assert not any("alpaca-7b" in text for text in texts)
    assert not any("helpful_base" in text for text in texts)
    assert texts[0] == (
        "user: What are the names of some famous actors that started their careers on Broadway?\n"
        "assistant: Some famous actors that started their careers on Broadway include: Tom Hanks, "
        "Meryl Streep, Laurence Olivier, Christopher Walken, and Jeremy Irons."
    )


def test_dolly_prompt_answer_keeps_the_baked_template_and_eos_marker(raw_dir: Path) -> None:
    record = _jsonl(raw_dir / "dolly15k_sample_templated.jsonl")[0]
    text = _text(record)
    assert text.startswith("user: Below is an instruction that describes a task.")
    assert "### Instruction:\nWhy is Citizen Kane considered the Best Film?\n\n### Response:\nassistant: " in text
    assert text.endswith("###eos_token###")


def test_identity_placeholders_are_content(raw_dir: Path) -> None:
    record = _json(raw_dir / "llamafactory_identity.json")[0]
    assert _text(record) == (
        "user: hi\nassistant: Hello! I am {{name}}, an AI assistant developed by {{author}}. "
        "How can I assist you today?"
    )


def test_self_instruct_renders_instruction_with_input_then_each_output(raw_dir: Path) -> None:
    records = _jsonl(raw_dir / "self_instruct_user_oriented_instructions.jsonl")
    record = records[0]
    instance = record["instances"][0]
    assert _text(record) == (f"user: {record['instruction']}\n{instance['input']}\nassistant: {instance['output']}")
    assert not any("user_oriented_task" in _text(r) or "Grammarly" in _text(r) for r in records)


def test_self_instruct_with_several_instances_gives_one_exchange_per_instance() -> None:
    record = {
        "id": "seed_task_x",
        "instruction": "Convert to uppercase.",
        "instances": [{"input": "abc", "output": "ABC"}, {"input": "xy", "output": "XY"}],
    }
    assert _text(record) == "user: Convert to uppercase.\nabc\nassistant: ABC\nuser: xy\nassistant: XY"


def test_sharegpt_normalizes_roles_and_drops_the_id(mixed: list[dict[str, Any]]) -> None:
    record = mixed[0]
    assert record["id"] == "identity_0"
    text = _text(record)
    assert text == (
        "user: Who are you?\n"
        "assistant: I am Vicuna, a language model trained by researchers from Large Model Systems "
        "Organization (LMSYS).\n"
        "user: Have a nice day!\n"
        "assistant: You too!"
    )
    assert "identity_0" not in text


def test_fastchat_ids_never_enter_the_text(raw_dir: Path) -> None:
    records = _json(raw_dir / "fastchat_dummy_conversation.json")
    assert not any(record["id"] in _text(record) for record in records)


def test_glaive_tools_come_first_and_function_roles_are_kept(mixed: list[dict[str, Any]]) -> None:
    lines = _text(mixed[1]).split("\n")
    assert lines[0].startswith('tools: [{"name": "search_recipes"')
    assert lines[1].startswith("user: Hi, I have some ingredients")
    assert lines[4].startswith('function_call: {"name": "search_recipes"')
    assert lines[5].startswith('observation: {"recipes": ')
    assert sum(line.startswith("assistant: ") for line in lines) == 3


def test_glaive_empty_tools_list_adds_no_turn(raw_dir: Path) -> None:
    records = _json(raw_dir / "llamafactory_glaive_toolcall_en_demo.json")
    without_tools = [record for record in records if record["tools"] == "[]"]
    assert len(without_tools) == 109
    assert not any(_text(record).startswith("tools:") for record in without_tools)


def test_sharegpt_preference_renders_prompt_then_chosen_and_rejected(mixed: list[dict[str, Any]]) -> None:
    record = mixed[2]
    text = _text(record)
    assert text.startswith("system: Explain how you used the definition to come up with the answer.\nuser: Definition:")
    assert f"\nchosen: {record['chosen']['value']}\nrejected: {record['rejected']['value']}" in text
    assert text.endswith(record["rejected"]["value"])


def test_dpo_multi_turn_prompt_keeps_every_turn_in_order(raw_dir: Path) -> None:
    record = next(r for r in _json(raw_dir / "llamafactory_dpo_en_demo.json") if len(r["conversations"]) == 5)
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    expected = [f"{roles[turn['from']]}: {turn['value']}" for turn in record["conversations"]]
    expected += [f"chosen: {record['chosen']['value']}", f"rejected: {record['rejected']['value']}"]
    assert [turn["from"] for turn in record["conversations"]] == ["human", "gpt", "human", "gpt", "human"]
    assert _text(record) == "\n".join(expected)


def test_openai_preference_with_repeated_prompt_renders_the_prompt_once() -> None:
    record = {
        "prompt": "Name a prime number.",
        "chosen": [
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "7"},
        ],
        "rejected": [
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "9"},
        ],
        "score_chosen": 9.0,
    }
    assert detect_format(record) == "preference"
    assert canonical_text(record, "preference") == "user: Name a prime number.\nchosen: 7\nrejected: 9"


def test_preference_message_lists_without_prompt_take_the_shared_turns_as_prompt() -> None:
    record = {
        "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
    }
    assert _text(record) == "user: Hi\nchosen: Hello!\nrejected: Go away."


def test_preference_with_string_prompt_and_answers() -> None:
    record = {"prompt": "2+2?", "chosen": "4", "rejected": "5", "source": "math-set"}
    assert _text(record) == "user: 2+2?\nchosen: 4\nrejected: 5"


def test_mt_bench_turns_are_user_turns_without_reference_or_category(mixed: list[dict[str, Any]]) -> None:
    record = mixed[5]
    assert record["category"] == "roleplay"
    text = _text(record)
    assert detect_format(record) == "messages"
    assert text.endswith("\nuser: Ich verstehe nur Bahnhof")
    assert text.count("user: ") == 2
    assert "roleplay" not in text
    assert "Becoming loose are my clothes" not in text


def test_messages_ignore_non_text_parts_and_normalize_roles() -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
                    {"type": "text", "text": "What animal is this?"},
                ],
            },
            {"role": "model", "content": "A cat."},
            {"role": "tool", "content": '{"ok": true}'},
        ],
        "id": "conv-17",
    }
    assert _text(record) == 'system: Be brief.\nuser: What animal is this?\nassistant: A cat.\ntool: {"ok": true}'


def test_the_same_exchange_in_four_formats_has_the_same_text() -> None:
    question, answer = "What is 2+2?", "4"
    alpaca = {"instruction": question, "input": "", "output": answer}
    sharegpt = {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
    messages = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    prompt_response = {"prompt": question, "response": answer}
    texts = {_text(alpaca), _text(sharegpt), _text(messages), _text(prompt_response)}
    assert texts == {"user: What is 2+2?\nassistant: 4"}


@pytest.mark.parametrize(
    "record",
    [
        {"question": "Q?", "answer": "A."},
        {"instruction": "Q?", "response": "A."},
        {"prompt": "Q?", "answer": "A."},
        {"instruction": "Q?", "output": "A."},
    ],
)
def test_alpaca_key_variants(record: dict[str, str]) -> None:
    assert detect_format(record) == "alpaca"
    assert _text(record) == "user: Q?\nassistant: A."


def test_alpaca_system_and_history_come_before_the_current_turn() -> None:
    record = {
        "system": "You are terse.",
        "history": [["Hi", "Hello."], ["How are you?", "Fine."]],
        "instruction": "Bye",
        "input": "",
        "output": "Bye.",
    }
    assert _text(record) == (
        "system: You are terse.\nuser: Hi\nassistant: Hello.\nuser: How are you?\nassistant: Fine.\n"
        "user: Bye\nassistant: Bye."
    )


def test_sharegpt_system_and_tools_strings_become_leading_turns() -> None:
    record = {
        "system": "Use tools.",
        "tools": '[{"name": "f"}]',
        "conversation": [{"from": "user", "value": "go"}, {"from": "chatgpt", "value": "done"}],
    }
    assert _text(record) == 'system: Use tools.\ntools: [{"name": "f"}]\nuser: go\nassistant: done'


def test_text_records_render_the_text_itself(mixed: list[dict[str, Any]]) -> None:
    record = mixed[6]
    assert _text(record) == record["text"]
    assert _text({"content": "a web page"}) == "a web page"


def test_whitespace_only_content_renders_as_blank() -> None:
    assert not _text({"instruction": "  ", "input": "", "output": "\n"}).strip()
    assert not _text({"text": " \t\n"}).strip()
    assert not _text({"conversations": [{"from": "human", "value": " "}, {"from": "gpt", "value": ""}]}).strip()


def test_role_normalization() -> None:
    assert [normalize_role(r) for r in ("human", "User", "gpt", "bing", "bard", "model", "chatgpt")] == [
        "user",
        "user",
        "assistant",
        "assistant",
        "assistant",
        "assistant",
        "assistant",
    ]
    assert normalize_role("function_call") == "function_call"
    assert normalize_role("observation") == "observation"


def test_unknown_record_error_names_the_fields_seen_and_the_formats_expected() -> None:
    with pytest.raises(RecordError) as excinfo:
        detect_format({"question_id": 3, "category": "math"})
    message = str(excinfo.value)
    assert "['category', 'question_id']" in message
    for fmt in FORMATS:
        assert fmt in message


def test_non_object_record_is_rejected() -> None:
    with pytest.raises(RecordError, match="must be a JSON object, got array"):
        detect_format(["not", "a", "record"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "fmt", "field"),
    [
        ({"conversations": "human: hi"}, "sharegpt", "'conversations' must be a list, got string"),
        ({"conversations": [{"from": "human"}]}, "sharegpt", "'conversations[0]' has no 'value'"),
        ({"conversations": [{"value": "hi"}]}, "sharegpt", "'conversations[0]' has no 'from'"),
        ({"conversations": ["hi"]}, "sharegpt", "'conversations[0]' must be an object"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages",
            "'messages[0].content' must be a string",
        ),
        ({"messages": [{"role": 1, "content": "x"}]}, "messages", "'messages[0].role' must be a string"),
        ({"turns": ["ok", 3]}, "messages", "'turns[1]' must be a string, got number"),
        (
            {"instruction": "x", "input": ["a"], "output": "y"},
            "alpaca",
            "'input' must be a string, got array",
        ),
        ({"instruction": "x", "output": {"a": 1}}, "alpaca", "'output' must be a string, got object"),
        ({"instruction": "x", "output": "y", "history": [["only one"]]}, "alpaca", "'history[0]'"),
        ({"instruction": "x", "instances": "y"}, "alpaca", "'instances' must be a list"),
        ({"instruction": "x", "instances": [{"input": "a"}]}, "alpaca", "'instances[0].output' is missing"),
        ({"prompt": "p", "chosen": 1, "rejected": "r"}, "preference", "'chosen' must be a string"),
        ({"prompt": 3, "chosen": "c", "rejected": "r"}, "preference", "'prompt' must be a string or a list"),
        ({"text": ["a"]}, "text", "'text' must be a string, got array"),
        ({"output": "y"}, "alpaca", "'instruction' is missing"),
        ({"instruction": "x"}, "alpaca", "'output' is missing"),
        ({"id": 1}, "sharegpt", "'conversations' is missing"),
        ({"id": 1}, "messages", "'messages' is missing"),
        ({"id": 1}, "text", "'text' is missing"),
    ],
)
def test_wrong_types_raise_a_record_error_naming_the_field(record: dict[str, Any], fmt: str, field: str) -> None:
    with pytest.raises(RecordError, match="field " + field.replace("[", r"\[").replace("(", r"\(")):
        canonical_text(record, fmt)  # type: ignore[arg-type]


def test_unknown_format_name_is_rejected() -> None:
    with pytest.raises(RecordError, match="unknown record format 'chat'"):
        canonical_text({"text": "x"}, "chat")  # type: ignore[arg-type]


_content = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["human", "gpt", "system", "observation"]), _content), min_size=1))
def test_sharegpt_and_messages_render_any_conversation_alike(turns: list[tuple[str, str]]) -> None:
    sharegpt = {"conversations": [{"from": role, "value": text} for role, text in turns]}
    messages = {"messages": [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in turns]}
    text = _text(sharegpt)
    assert text == _text(messages)
    assert text.count("\n") >= len(turns) - 1
    assert text.startswith(f"{normalize_role(turns[0][0])}: ")


def test_training_text_of_a_preference_pair_is_prompt_plus_chosen(raw_dir: Path) -> None:
    from entropy_assets.records import training_text

    record = json.loads((raw_dir / "llamafactory_dpo_en_demo.json").read_text(encoding="utf-8"))[0]
    text = training_text(record, "preference")
    assert text.startswith("user: " + record["conversations"][0]["value"])
    assert text.endswith("assistant: " + record["chosen"]["value"])
    assert record["rejected"]["value"] not in text
    assert training_text({"text": "plain"}, "text") == "plain"
