"""A record rendered as turns, and the texts made of them: the canonical text, what a trainer reads (prompt and
completion apart where a record has them), and the labels that stay out of the text."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .columns import ColumnMapping
from .errors import RecordError, json_type_name
from .shapes import Fields, RecordFormat, match_shape

Turn = tuple[str, str]

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


def normalize_role(role: str) -> str:
    """Map a speaker tag to user/assistant/system; other tags (tool, observation, ...) stay as given."""
    return _ROLE_ALIASES.get(role.strip().lower(), role)


@dataclass(frozen=True)
class ReadRecord:
    """A record as read: its format, its canonical text, the turns that make it, where its completion begins
    (None where the record does not say: a conversation's completion is then its last run of assistant turns),
    and its labels (an unpaired preference's ``label``, stepwise ``labels``, OpenAI message ``weights``), which
    never enter the text."""

    format: RecordFormat
    text: str
    turns: tuple[Turn, ...] = ()
    completion_start: int | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)

    def training_text(self) -> str:
        """What a causal language model trains on: the canonical text, except that a preference pair becomes its
        prompt followed by the chosen response as the assistant's turn (the rejected one is left out)."""
        if self.format != "preference":
            return self.text
        return render_turns(self._training_turns())

    def prompt_and_completion(self) -> tuple[str, str] | None:
        """The training text as (prompt, completion), joined by a newline, so that a trainer can take the loss on
        the completion only; None where the record has no completion apart from its prompt."""
        turns = self._training_turns()
        start = self.completion_start
        if start is None:
            start = len(turns)
            while start > 0 and turns[start - 1][0] == "assistant":
                start -= 1
        prompt, completion = render_turns(turns[:start]), render_turns(turns[start:])
        return (prompt, completion) if prompt and completion else None

    def preference_parts(self) -> tuple[str, str, str]:
        """A preference pair as (prompt, chosen response, rejected response) text, for DPO-style training."""
        if self.format != "preference":
            raise RecordError(f"a {self.format} record is not a preference pair")
        roles = dict(self.turns[-2:])
        return render_turns(self.turns[:-2]), roles["chosen"], roles["rejected"]

    def _training_turns(self) -> list[Turn]:
        if self.format != "preference":
            return list(self.turns)
        prompt = list(self.turns[:-2])
        return [*prompt, ("assistant", dict(self.turns[-2:])["chosen"])]


def read_record(
    record: Mapping[str, Any], fmt: RecordFormat | None = None, columns: ColumnMapping | None = None
) -> ReadRecord:
    """Read a record: its shape (detected, or of format ``fmt``), its turns and canonical text, and its labels.
    ``columns`` maps the record's own fields onto the canonical roles."""
    shape, fields = match_shape(record, fmt, columns)
    labels = _labels(fields)
    if shape.format == "text":
        return ReadRecord(
            "text", _string(fields, "text", expected="a text record needs a 'text' string"), (), None, labels
        )
    turns, start = _RENDERERS[shape.format](fields)
    return ReadRecord(shape.format, render_turns(turns), tuple(turns), start, labels)


def detect_format(record: Mapping[str, Any], columns: ColumnMapping | None = None) -> RecordFormat:
    """The format of the first shape whose fields the record carries; fields holding null count as absent."""
    return match_shape(record, None, columns)[0].format


def canonical_text(record: Mapping[str, Any], fmt: RecordFormat, columns: ColumnMapping | None = None) -> str:
    """Render the record's content as ``role: content`` turns joined by newlines ("" when it has none)."""
    return read_record(record, fmt, columns).text


def training_text(record: Mapping[str, Any], fmt: RecordFormat, columns: ColumnMapping | None = None) -> str:
    """The text a causal language model trains on (``ReadRecord.training_text``)."""
    return read_record(record, fmt, columns).training_text()


def preference_parts(record: Mapping[str, Any], columns: ColumnMapping | None = None) -> tuple[str, str, str]:
    """A preference pair as (prompt, chosen response, rejected response) text, for DPO-style training."""
    return read_record(record, "preference", columns).preference_parts()


def render_turns(turns: Sequence[Turn]) -> str:
    """Join turns as ``role: content`` lines, leaving out turns with no content."""
    return "\n".join(f"{role}: {content}" for role, content in turns if content.strip())


_Rendered = tuple[list[Turn], int | None]


def _alpaca_turns(fields: Fields) -> _Rendered:
    turns = _prompt_turns(fields)
    if fields.has("response"):
        return [*turns, ("assistant", _string(fields, "response"))], len(turns)
    if fields.has("instances"):
        return turns[:-1] + _instance_turns(fields, first_input_prefix=turns[-1][1]), None
    raise RecordError(
        f"field '{fields.label('response')}' is missing; an alpaca record needs one of "
        f"{', '.join(fields.names.get('response', ()))} (or 'instances' with 'instruction')"
    )


def _prompt_turns(fields: Fields) -> list[Turn]:
    """System, history and the prompt (the current user turn, with any input, or a list of messages)."""
    turns = _system_turns(fields)
    turns.extend(_history_turns(fields))
    prompt = fields.get("prompt")
    if isinstance(prompt, list):
        label = fields.label("prompt")
        turns.extend(_turn(message, f"{label}[{i}]", fields) for i, message in enumerate(prompt))
        return turns
    if prompt is None and not fields.has("input"):
        names = ", ".join(fields.names.get("prompt", ()))
        raise RecordError(f"field '{fields.label('prompt')}' is missing; the prompt is one of {names}")
    if prompt is not None and not isinstance(prompt, str):
        problem = f"must be a string or a list of messages, got {json_type_name(prompt)}"
        raise RecordError(f"field '{fields.label('prompt')}' {problem}")
    query = _optional_string(fields, "input")
    turns.append(("user", _join_parts(prompt or "", query)))
    return turns


def _instance_turns(fields: Fields, first_input_prefix: str) -> list[Turn]:
    """Self-instruct seed tasks: instruction and first input, then one exchange per instance."""
    turns: list[Turn] = []
    for i, instance in enumerate(_list(fields, "instances")):
        label = f"{fields.label('instances')}[{i}]"
        if not isinstance(instance, Mapping):
            raise RecordError(f"field '{label}' must be an object with input/output, got {json_type_name(instance)}")
        query = _as_string(instance.get("input"), f"{label}.input", optional=True)
        output = _as_string(instance.get("output"), f"{label}.output")
        turns.append(("user", _join_parts(first_input_prefix, query) if i == 0 else query))
        turns.append(("assistant", output))
    if not turns:
        turns.append(("user", first_input_prefix))
    return turns


def _history_turns(fields: Fields) -> list[Turn]:
    if not fields.has("history"):
        return []
    turns: list[Turn] = []
    for i, pair in enumerate(_list(fields, "history")):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise RecordError(f"field '{fields.label('history')}[{i}]' must be a [user, assistant] pair of strings")
        turns.append(("user", pair[0]))
        turns.append(("assistant", pair[1]))
    return turns


def _sharegpt_turns(fields: Fields) -> _Rendered:
    return _conversation_turns(fields, "a sharegpt record needs a list of {from, value} turns"), None


def _messages_turns(fields: Fields) -> _Rendered:
    return _conversation_turns(fields, "a messages record needs 'messages' (or 'turns')"), None


def _conversation_turns(fields: Fields, needs: str) -> list[Turn]:
    """System, tools, then the conversation's turns (or ``turns``, a list of user messages)."""
    turns = _system_turns(fields) + _tools_turns(fields)
    if fields.has("messages"):
        label = fields.label("messages")
        turns.extend(_turn(turn, f"{label}[{i}]", fields) for i, turn in enumerate(_list(fields, "messages")))
        return turns
    if fields.has("turns"):
        for i, text in enumerate(_list(fields, "turns")):
            turns.append(("user", _as_string(text, f"{fields.label('turns')}[{i}]", must=True)))
        return turns
    raise RecordError(f"field '{fields.label('messages')}' is missing; {needs}")


def _preference_turns(fields: Fields) -> _Rendered:
    if fields.has("messages"):
        turns = _conversation_turns(fields, "")
    elif fields.has("prompt"):
        turns = _prompt_turns(fields)
    else:
        turns = []
    needs = "a preference record needs both 'chosen' and 'rejected'"
    chosen = _reply_turns(fields, "chosen", needs)
    rejected = _reply_turns(fields, "rejected", needs)
    shared = 0
    limit = min(len(chosen), len(rejected)) - 1
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    if not turns:
        turns = chosen[:shared]
    turns.append(("chosen", _join_contents(chosen[shared:])))
    turns.append(("rejected", _join_contents(rejected[shared:])))
    return turns, len(turns) - 2


def _prompt_completion_turns(fields: Fields) -> _Rendered:
    turns = _prompt_turns(fields)
    completion = _reply_turns(fields, "completion", "a prompt-completion record needs a 'completion'")
    return turns + completion, len(turns)


def _stepwise_turns(fields: Fields) -> _Rendered:
    """The prompt, then the steps as one assistant turn, a line each."""
    turns = _prompt_turns(fields)
    label = fields.label("completions")
    steps = [_as_string(step, f"{label}[{i}]", must=True) for i, step in enumerate(_list(fields, "completions"))]
    return [*turns, ("assistant", _join_parts(*steps))], len(turns)


def _prompt_only_turns(fields: Fields) -> _Rendered:
    return _prompt_turns(fields), None


_RENDERERS: dict[str, Callable[[Fields], _Rendered]] = {
    "alpaca": _alpaca_turns,
    "sharegpt": _sharegpt_turns,
    "messages": _messages_turns,
    "preference": _preference_turns,
    "prompt_completion": _prompt_completion_turns,
    "unpaired_preference": _prompt_completion_turns,
    "stepwise_supervision": _stepwise_turns,
    "prompt_only": _prompt_only_turns,
}


def _reply_turns(fields: Fields, role: str, needs: str) -> list[Turn]:
    """A response: a string (the assistant's), one turn, or a message list (which may repeat the prompt turns)."""
    label = fields.label(role)
    if not fields.has(role):
        raise RecordError(f"field '{label}' is missing; {needs}")
    value = fields.get(role)
    if isinstance(value, str):
        return [("assistant", value)]
    if isinstance(value, Mapping):
        return [_turn(value, label, fields)]
    if isinstance(value, list):
        return [_turn(message, f"{label}[{i}]", fields) for i, message in enumerate(value)]
    raise RecordError(f"field '{label}' must be a string, a turn or a list of messages, got {json_type_name(value)}")


def _turn(turn: Any, label: str, fields: Fields) -> Turn:
    """One {from, value} (ShareGPT) or {role, content} (OpenAI) turn, or one keyed as the column mapping's tags
    say, with its role normalized."""
    if not isinstance(turn, Mapping):
        raise RecordError(
            f"field '{label}' must be an object with from/value or role/content, got {json_type_name(turn)}"
        )
    role_key = fields.role_key or ("from" if "from" in turn else "role")
    content_key = fields.content_key or ("value" if "value" in turn else "content")
    if role_key not in turn:
        raise RecordError(f"field '{label}' has no {_key_names(role_key, fields.role_key, 'from', 'role')}")
    if content_key not in turn:
        raise RecordError(f"field '{label}' has no {_key_names(content_key, fields.content_key, 'value', 'content')}")
    role = turn[role_key]
    if not isinstance(role, str):
        raise RecordError(f"field '{label}.{role_key}' must be a string, got {json_type_name(role)}")
    content = _content(turn[content_key], f"{label}.{content_key}")
    tool_calls = turn.get("tool_calls")
    if tool_calls:
        content = _join_parts(content, _json_text(tool_calls, f"{label}.tool_calls"))
    return fields.speakers.get(role) or normalize_role(role), content


def _key_names(key: str, mapped: str | None, usual: str, other: str) -> str:
    return f"'{key}' (the columns' tag)" if mapped else f"'{usual}' (or '{other}')"


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
                    texts.append(_as_string(part.get("text"), f"{label}[{i}].text", must=True))
            else:
                raise RecordError(
                    f"field '{label}[{i}]' must be a string or a content part, got {json_type_name(part)}"
                )
        return "\n".join(text for text in texts if text.strip())
    raise RecordError(f"field '{label}' must be a string or a list of content parts, got {json_type_name(value)}")


def _system_turns(fields: Fields) -> list[Turn]:
    system = _optional_string(fields, "system")
    return [("system", system)] if system.strip() else []


def _tools_turns(fields: Fields) -> list[Turn]:
    """Tool schemas as one turn; an empty list (glaive's ``"[]"``) carries no content and is left out."""
    if not fields.has("tools"):
        return []
    label = fields.label("tools")
    tools = fields.get("tools")
    if isinstance(tools, list | Mapping):
        tools = _json_text(tools, label) if tools else ""
    if not isinstance(tools, str):
        raise RecordError(f"field '{label}' must be a string or a list, got {json_type_name(tools)}")
    return [] if tools.strip() in ("", "[]") else [("tools", tools)]


def _labels(fields: Fields) -> dict[str, Any]:
    """What a record says about its content that never enters the text: ``label``, ``labels`` and the OpenAI
    messages' ``weight`` (as ``weights``, one per message, null where a message has none)."""
    labels = {role: fields.get(role) for role in ("label", "labels") if fields.has(role)}
    messages = fields.get("messages")
    if isinstance(messages, list) and any(isinstance(m, Mapping) and "weight" in m for m in messages):
        labels["weights"] = [m.get("weight") if isinstance(m, Mapping) else None for m in messages]
    return labels


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


def _string(fields: Fields, role: str, *, expected: str = "") -> str:
    value = fields.get(role)
    if isinstance(value, str):
        return value
    if value is None:
        raise RecordError(f"field '{fields.label(role)}' is missing" + (f"; {expected}" if expected else ""))
    return _as_string(value, fields.label(role))


def _optional_string(fields: Fields, role: str) -> str:
    value = fields.get(role)
    if value is None:
        return ""
    return value if isinstance(value, str) else _as_string(value, fields.label(role))


def _as_string(value: Any, label: str, *, optional: bool = False, must: bool = False) -> str:
    """``value`` when it is a string; "" for null when ``optional``; else a ``RecordError`` naming the field."""
    if value is None and optional:
        return ""
    if value is None and not must:
        raise RecordError(f"field '{label}' is missing")
    if not isinstance(value, str):
        raise RecordError(f"field '{label}' must be a string, got {json_type_name(value)}")
    return value


def _list(fields: Fields, role: str) -> list[Any]:
    value = fields.get(role)
    if not isinstance(value, list | tuple):
        raise RecordError(f"field '{fields.label(role)}' must be a list, got {json_type_name(value)}")
    return list(value)
