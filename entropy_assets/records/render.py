"""Record formats of instruction-tuning data and the canonical text that stands for each record.

The canonical text is what gets compressed and compared: the content of a record rendered as turns
``"{role}: {content}"`` joined by newlines, with roles normalized so that the same conversation stored as
Alpaca, ShareGPT or OpenAI messages yields the same bytes. Ids and bookkeeping fields never enter it.
Turns whose content is empty or whitespace-only are left out, so a record with no content renders as "".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

RecordFormat = Literal["alpaca", "sharegpt", "messages", "preference", "text"]
FORMATS: tuple[str, ...] = get_args(RecordFormat)

Turn = tuple[str, str]

PROMPT_KEYS: tuple[str, ...] = ("instruction", "prompt", "question")
RESPONSE_KEYS: tuple[str, ...] = ("output", "response", "answer")

_ROLE_ALIASES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}

_EXPECTED = (
    "expected one of alpaca (instruction/input/output, prompt/response, question/answer, "
    "instruction/instances), sharegpt (conversations), messages (messages or turns), "
    "preference (chosen + rejected), text (text)"
)

_JSON_TYPE_NAMES: dict[type, str] = {
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class RecordError(ValueError):
    """A record that does not fit its format; the message names the field and what is wrong with it."""


def normalize_role(role: str) -> str:
    """Map a speaker tag to user/assistant/system; other tags (tool, observation, ...) stay as given."""
    return _ROLE_ALIASES.get(role.strip().lower(), role)


def detect_format(record: Mapping[str, Any]) -> RecordFormat:
    """Return the format whose fields the record carries; fields holding null count as absent."""
    if not isinstance(record, Mapping):
        raise RecordError(f"record must be a JSON object, got {json_type_name(record)}")
    get = record.get
    if get("chosen") is not None and get("rejected") is not None:
        return "preference"
    if get("messages") is not None:
        return "messages"
    if get("conversations") is not None or get("conversation") is not None:
        return "sharegpt"
    if _first_present(record, PROMPT_KEYS) is not None and (
        _first_present(record, RESPONSE_KEYS) is not None or get("instances") is not None
    ):
        return "alpaca"
    if get("turns") is not None:
        return "messages"
    if get("text") is not None or (get("content") is not None and get("role") is None):
        return "text"
    seen = sorted(str(key) for key in record)
    raise RecordError(f"no known record format fits the fields {seen}; {_EXPECTED}")


def canonical_text(record: Mapping[str, Any], fmt: RecordFormat) -> str:
    """Render the record's content as ``role: content`` turns joined by newlines ("" when it has none)."""
    if not isinstance(record, Mapping):
        raise RecordError(f"record must be a JSON object, got {json_type_name(record)}")
    if fmt == "text":
        return _text_content(record)
    renderer = _RENDERERS.get(fmt) if isinstance(fmt, str) else None
    if renderer is None:
        raise RecordError(f"unknown record format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return render_turns(renderer(record))


def training_text(record: Mapping[str, Any], fmt: RecordFormat) -> str:
    """The text a causal language model trains on: the canonical text, except that a preference pair becomes its
    prompt followed by the chosen response (as the assistant's turn); the rejected response is left out."""
    if fmt != "preference" or not isinstance(record, Mapping):
        return canonical_text(record, fmt)
    turns = [
        ("assistant", content) if role == "chosen" else (role, content) for role, content in _preference_turns(record)
    ]
    return render_turns([turn for turn in turns if turn[0] != "rejected"])


def preference_parts(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """A preference pair as (prompt, chosen response, rejected response) text, for DPO-style training."""
    if not isinstance(record, Mapping):
        raise RecordError(f"record must be a JSON object, got {json_type_name(record)}")
    turns = _preference_turns(record)
    roles = dict(turns[-2:])
    return render_turns(turns[:-2]), roles["chosen"], roles["rejected"]


def render_turns(turns: Sequence[Turn]) -> str:
    """Join turns as ``role: content`` lines, leaving out turns with no content."""
    return "\n".join(f"{role}: {content}" for role, content in turns if content.strip())


def _text_content(record: Mapping[str, Any]) -> str:
    key = "text" if _has(record, "text") or not _has(record, "content") else "content"
    return _string(record, key, expected="a text record needs a 'text' string")


def _alpaca_turns(record: Mapping[str, Any]) -> list[Turn]:
    turns = _prompt_turns(record)
    response_key = _first_present(record, RESPONSE_KEYS)
    if response_key is not None:
        turns.append(("assistant", _string(record, response_key)))
        return turns
    if _has(record, "instances"):
        return turns[:-1] + _instance_turns(record, first_input_prefix=turns[-1][1])
    raise RecordError(
        "field 'output' is missing; an alpaca record needs one of "
        f"{', '.join(RESPONSE_KEYS)} (or 'instances' with 'instruction')"
    )


def _prompt_turns(record: Mapping[str, Any]) -> list[Turn]:
    """System, history and the current user turn of an alpaca-style record (the user turn is always last)."""
    turns = _system_turns(record) if "system" in record else []
    if "history" in record:
        turns.extend(_history_turns(record))
    prompt_key = _first_present(record, PROMPT_KEYS)
    if prompt_key is None:
        raise RecordError(f"field 'instruction' is missing; an alpaca record needs one of {', '.join(PROMPT_KEYS)}")
    prompt = _string(record, prompt_key)
    query = _optional_string(record, "input")
    turns.append(("user", _join_parts(prompt, query)))
    return turns


def _instance_turns(record: Mapping[str, Any], first_input_prefix: str) -> list[Turn]:
    """Self-instruct seed tasks: instruction and first input, then one exchange per instance."""
    turns: list[Turn] = []
    for i, instance in enumerate(_list(record, "instances")):
        label = f"instances[{i}]"
        if not isinstance(instance, Mapping):
            raise RecordError(f"field '{label}' must be an object with input/output, got {json_type_name(instance)}")
        query = _optional_string(instance, "input", label=f"{label}.input")
        output = _string(instance, "output", label=f"{label}.output")
        turns.append(("user", _join_parts(first_input_prefix, query) if i == 0 else query))
        turns.append(("assistant", output))
    if not turns:
        turns.append(("user", first_input_prefix))
    return turns


def _history_turns(record: Mapping[str, Any]) -> list[Turn]:
    if not _has(record, "history"):
        return []
    turns: list[Turn] = []
    for i, pair in enumerate(_list(record, "history")):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise RecordError(f"field 'history[{i}]' must be a [user, assistant] pair of strings")
        turns.append(("user", pair[0]))
        turns.append(("assistant", pair[1]))
    return turns


def _sharegpt_turns(record: Mapping[str, Any]) -> list[Turn]:
    key = "conversations" if _has(record, "conversations") or not _has(record, "conversation") else "conversation"
    if not _has(record, key):
        raise RecordError(f"field '{key}' is missing; a sharegpt record needs a list of {{from, value}} turns")
    turns = _system_turns(record) + _tools_turns(record)
    turns.extend(_turn(turn, f"{key}[{i}]") for i, turn in enumerate(_list(record, key)))
    return turns


def _messages_turns(record: Mapping[str, Any]) -> list[Turn]:
    turns = _system_turns(record) + _tools_turns(record)
    if _has(record, "messages"):
        turns.extend(_turn(message, f"messages[{i}]") for i, message in enumerate(_list(record, "messages")))
        return turns
    if _has(record, "turns"):
        for i, text in enumerate(_list(record, "turns")):
            if not isinstance(text, str):
                raise RecordError(f"field 'turns[{i}]' must be a string, got {json_type_name(text)}")
            turns.append(("user", text))
        return turns
    raise RecordError("field 'messages' is missing; a messages record needs 'messages' (or 'turns')")


def _preference_turns(record: Mapping[str, Any]) -> list[Turn]:
    if _has(record, "prompt"):
        prompt = record["prompt"]
        if isinstance(prompt, str):
            turns = [*_system_turns(record), ("user", prompt)]
        elif isinstance(prompt, list):
            turns = _system_turns(record) + [_turn(message, f"prompt[{i}]") for i, message in enumerate(prompt)]
        else:
            raise RecordError(f"field 'prompt' must be a string or a list of messages, got {json_type_name(prompt)}")
    elif _has(record, "conversations") or _has(record, "conversation"):
        turns = _sharegpt_turns(record)
    elif _has(record, "messages"):
        turns = _messages_turns(record)
    elif _first_present(record, PROMPT_KEYS) is not None:
        turns = _prompt_turns(record)
    else:
        turns = []

    chosen = _response_turns(record, "chosen")
    rejected = _response_turns(record, "rejected")
    shared = 0
    limit = min(len(chosen), len(rejected)) - 1
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    if not turns:
        turns = chosen[:shared]
    turns.append(("chosen", _join_contents(chosen[shared:])))
    turns.append(("rejected", _join_contents(rejected[shared:])))
    return turns


_RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[Turn]]] = {
    "alpaca": _alpaca_turns,
    "sharegpt": _sharegpt_turns,
    "messages": _messages_turns,
    "preference": _preference_turns,
}


def _response_turns(record: Mapping[str, Any], field: str) -> list[Turn]:
    """A chosen/rejected side: a string, one turn, or a message list that may repeat the prompt turns."""
    if not _has(record, field):
        raise RecordError(f"field '{field}' is missing; a preference record needs both 'chosen' and 'rejected'")
    value = record[field]
    if isinstance(value, str):
        return [("assistant", value)]
    if isinstance(value, Mapping):
        return [_turn(value, field)]
    if isinstance(value, list):
        return [_turn(message, f"{field}[{i}]") for i, message in enumerate(value)]
    raise RecordError(f"field '{field}' must be a string, a turn or a list of messages, got {json_type_name(value)}")


def _turn(turn: Any, label: str) -> Turn:
    """One {from, value} (ShareGPT) or {role, content} (OpenAI) turn with its role normalized."""
    if not isinstance(turn, Mapping):
        raise RecordError(
            f"field '{label}' must be an object with from/value or role/content, got {json_type_name(turn)}"
        )
    role_key = "from" if "from" in turn else "role"
    content_key = "value" if "value" in turn else "content"
    if role_key not in turn:
        raise RecordError(f"field '{label}' has no 'from' (or 'role')")
    if content_key not in turn:
        raise RecordError(f"field '{label}' has no 'value' (or 'content')")
    role = turn[role_key]
    if not isinstance(role, str):
        raise RecordError(f"field '{label}.{role_key}' must be a string, got {json_type_name(role)}")
    content = _content(turn[content_key], f"{label}.{content_key}")
    tool_calls = turn.get("tool_calls")
    if tool_calls:
        content = _join_parts(content, _json_text(tool_calls, f"{label}.tool_calls"))
    return normalize_role(role), content


def _content(value: Any, label: str) -> str:
    """Message content: a string, null (no text), or a list of parts of which only text parts count."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        texts: list[str] = []
        for i, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                if part.get("type", "text") == "text":
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise RecordError(f"field '{label}[{i}].text' must be a string, got {json_type_name(text)}")
                    texts.append(text)
            else:
                raise RecordError(
                    f"field '{label}[{i}]' must be a string or a content part, got {json_type_name(part)}"
                )
        return "\n".join(text for text in texts if text.strip())
    raise RecordError(f"field '{label}' must be a string or a list of content parts, got {json_type_name(value)}")


def _system_turns(record: Mapping[str, Any]) -> list[Turn]:
    system = _optional_string(record, "system")
    return [("system", system)] if system.strip() else []


def _tools_turns(record: Mapping[str, Any]) -> list[Turn]:
    """Tool schemas as one turn; an empty list (glaive's ``"[]"``) carries no content and is left out."""
    if not _has(record, "tools"):
        return []
    tools = record["tools"]
    if isinstance(tools, list | Mapping):
        tools = _json_text(tools, "tools") if tools else ""
    if not isinstance(tools, str):
        raise RecordError(f"field 'tools' must be a string or a list, got {json_type_name(tools)}")
    return [] if tools.strip() in ("", "[]") else [("tools", tools)]


def _json_text(value: Any, label: str) -> str:
    """A field rendered as JSON text; values JSON cannot hold (too deep, cyclic, huge integers, other types) are a
    ``RecordError`` naming the field."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise RecordError(f"field '{label}' cannot be written as JSON ({type(exc).__name__}: {exc})") from exc


def _join_parts(*parts: str) -> str:
    return "\n".join(part for part in parts if part.strip())


def _join_contents(turns: Sequence[Turn]) -> str:
    return _join_parts(*(content for _, content in turns))


def _string(record: Mapping[str, Any], key: str, *, label: str | None = None, expected: str = "") -> str:
    label = label or key
    if key not in record or record[key] is None:
        raise RecordError(f"field '{label}' is missing" + (f"; {expected}" if expected else ""))
    value = record[key]
    if not isinstance(value, str):
        raise RecordError(f"field '{label}' must be a string, got {json_type_name(value)}")
    return value


def _optional_string(record: Mapping[str, Any], key: str, *, label: str | None = None) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field '{label or key}' must be a string, got {json_type_name(value)}")
    return value


def _list(record: Mapping[str, Any], key: str) -> list[Any]:
    value = record[key]
    if not isinstance(value, list | tuple):
        raise RecordError(f"field '{key}' must be a list, got {json_type_name(value)}")
    return list(value)


def _has(record: Mapping[str, Any], key: str) -> bool:
    return record.get(key) is not None


def _first_present(record: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        if record.get(key) is not None:
            return key
    return None


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type (string, array, object, ...), for error messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
