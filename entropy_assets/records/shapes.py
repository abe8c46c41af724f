"""The shapes a record may take, as data: for each, its format, the names under which each role's value is found,
and the roles it needs. Detection tries the shapes in order (``SHAPES``, the precedence) with field names as
written, then again ignoring case; a column mapping puts its fields in place of the usual names.

The shapes understood before column mappings come first, with their names as they were, so that every record they
accepted keeps its shape and its canonical text; the newer shapes and names follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, get_args

from .columns import ColumnMapping
from .errors import RecordError, json_type_name

RecordFormat = Literal[
    "alpaca",
    "sharegpt",
    "messages",
    "preference",
    "text",
    "prompt_completion",
    "prompt_only",
    "unpaired_preference",
    "stepwise_supervision",
]
FORMATS: tuple[str, ...] = get_args(RecordFormat)

PROMPT_NAMES: tuple[str, ...] = ("instruction", "prompt", "question")
RESPONSE_NAMES: tuple[str, ...] = ("output", "response", "answer")
ANY_PROMPT_NAMES: tuple[str, ...] = (*PROMPT_NAMES, "query", "problem")
"""Prompt names of the newer shapes: MetaMath's query, MATH's and NuminaMath's problem too."""
ANY_RESPONSE_NAMES: tuple[str, ...] = (*RESPONSE_NAMES, "solution")

_SYSTEM = {"system": ("system",)}
_ALPACA_PROMPT = {**_SYSTEM, "history": ("history",), "input": ("input",)}


@dataclass(frozen=True)
class Shape:
    """One layout of a record: its ``format``; ``names``, each role's field names (the first one holding a value
    wins); ``needs``, for each entry one of these roles must hold a value; ``without``, fields that must not."""

    format: RecordFormat
    names: Mapping[str, tuple[str, ...]]
    needs: tuple[tuple[str, ...], ...]
    without: tuple[str, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)
    """A record of this shape, for the documentation."""


SHAPES: tuple[Shape, ...] = (
    Shape(
        "preference",
        {**_SYSTEM, "prompt": ("prompt",), "chosen": ("chosen",), "rejected": ("rejected",)},
        (("prompt",), ("chosen",), ("rejected",)),
        example={"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
    ),
    Shape(
        "preference",
        {
            **_ALPACA_PROMPT,
            "prompt": ("instruction", "question"),
            "messages": ("conversations", "conversation", "messages"),
            "tools": ("tools",),
            "chosen": ("chosen",),
            "rejected": ("rejected",),
        },
        (("chosen",), ("rejected",)),
        example={"chosen": "The sky is blue.", "rejected": "The sky is green."},
    ),
    Shape(
        "messages",
        {**_SYSTEM, "messages": ("messages",), "turns": ("turns",), "tools": ("tools",)},
        (("messages",),),
        example={
            "messages": [
                {"role": "user", "content": "What color is the sky?"},
                {"role": "assistant", "content": "It is blue."},
            ]
        },
    ),
    Shape(
        "sharegpt",
        {**_SYSTEM, "messages": ("conversations", "conversation"), "tools": ("tools",)},
        (("messages",),),
        example={
            "conversations": [
                {"from": "human", "value": "What color is the sky?"},
                {"from": "gpt", "value": "It is blue."},
            ]
        },
    ),
    Shape(
        "alpaca",
        {
            **_ALPACA_PROMPT,
            "prompt": PROMPT_NAMES,
            "response": RESPONSE_NAMES,
            "instances": ("instances",),
        },
        (("prompt",), ("response", "instances")),
        example={"instruction": "What color is the sky?", "input": "", "output": "It is blue."},
    ),
    Shape(
        "messages",
        {**_SYSTEM, "turns": ("turns",), "tools": ("tools",)},
        (("turns",),),
        example={"turns": ["What color is the sky?", "And at night?"]},
    ),
    Shape("text", {"text": ("text",)}, (("text",),), example={"text": "The sky is blue."}),
    Shape("text", {"text": ("content",)}, (("text",),), without=("role",)),
    Shape(
        "preference",
        {
            "messages": ("input.messages",),
            "tools": ("input.tools",),
            "chosen": ("preferred_output",),
            "rejected": ("non_preferred_output",),
        },
        (("chosen",), ("rejected",)),
        example={
            "input": {"messages": [{"role": "user", "content": "What color is the sky?"}]},
            "preferred_output": [{"role": "assistant", "content": "It is blue."}],
            "non_preferred_output": [{"role": "assistant", "content": "It is green."}],
        },
    ),
    Shape(
        "stepwise_supervision",
        {**_SYSTEM, "prompt": ANY_PROMPT_NAMES, "completions": ("completions",), "labels": ("labels",)},
        (("prompt",), ("completions",)),
        example={
            "prompt": "Which number is larger, 9.8 or 9.11?",
            "completions": ["The fractional part of 9.8 is 0.8.", "0.8 > 0.11, so 9.8 is larger."],
            "labels": [True, True],
        },
    ),
    Shape(
        "unpaired_preference",
        {**_ALPACA_PROMPT, "prompt": ANY_PROMPT_NAMES, "completion": ("completion",), "label": ("label",)},
        (("prompt",), ("completion",), ("label",)),
        example={"prompt": "The sky is", "completion": " blue.", "label": True},
    ),
    Shape(
        "prompt_completion",
        {**_ALPACA_PROMPT, "prompt": ANY_PROMPT_NAMES, "completion": ("completion",)},
        (("prompt",), ("completion",)),
        example={"prompt": "What color is the sky?", "completion": "It is blue."},
    ),
    Shape(
        "alpaca",
        {
            **_ALPACA_PROMPT,
            "prompt": ANY_PROMPT_NAMES,
            "response": ANY_RESPONSE_NAMES,
            "instances": ("instances",),
        },
        (("prompt", "input"), ("response", "instances")),
        example={"query": "What color is the sky?", "response": "It is blue."},
    ),
    Shape(
        "prompt_only",
        {**_ALPACA_PROMPT, "prompt": ANY_PROMPT_NAMES},
        (("prompt", "input"),),
        example={"prompt": "What color is the sky?"},
    ),
)
"""Every shape, in precedence order: a record takes the first that fits."""


class Fields:
    """A record seen through a shape: each role's value and the field it came from (``name``), found under the
    first of the role's names that holds a value; with ``folded`` (the record's field names by their lower case),
    a name matches a field that differs only in case when none matches as written. ``speakers`` maps a
    conversation's speaker names to roles, ``role_key`` and ``content_key`` name its turns' keys (unset:
    ``from``/``role`` and ``value``/``content``)."""

    __slots__ = ("_found", "content_key", "names", "record", "role_key", "speakers")

    def __init__(
        self,
        record: Mapping[str, Any],
        names: Mapping[str, tuple[str, ...]],
        *,
        folded: Mapping[str, str] | None = None,
        columns: ColumnMapping | None = None,
        dotted: bool = True,
    ) -> None:
        self.record = record
        self.names = names
        self.speakers = columns.speakers() if columns is not None else {}
        self.role_key = columns.role_tag if columns is not None else None
        self.content_key = columns.content_tag if columns is not None else None
        self._found = _resolve(record, names, folded, dotted)

    def name(self, role: str) -> str | None:
        """The field holding the role's value (a dotted path for a nested one); None when no name holds one."""
        return self._found.get(role)

    def get(self, role: str) -> Any:
        """The role's value; None when the record has none."""
        name = self._found.get(role)
        if name is None:
            return None
        value = self.record.get(name)
        return _nested(self.record, name) if value is None else value

    def has(self, role: str) -> bool:
        return self.name(role) is not None

    def label(self, role: str) -> str:
        """How an error message names the role's field: the field that holds it, else its first name."""
        return self.name(role) or next(iter(self.names.get(role, ())), role)


@dataclass(frozen=True)
class _Candidate:
    """A shape to try, with its names as a column mapping changes them, and for each of its needs the names that
    meet it."""

    shape: Shape
    names: Mapping[str, tuple[str, ...]]
    needs: tuple[tuple[str, ...], ...]
    dotted: bool
    """Whether some name is a dotted path."""

    def fits(self, record: Mapping[str, Any], folded: Mapping[str, str] | None) -> bool:
        """Whether the record holds a value for each need and none under ``shape.without``."""
        for name in self.shape.without:
            if record.get(name) is not None:
                return False
        return all(_holding(record, names, folded) is not None for names in self.needs)


def _resolve(
    record: Mapping[str, Any], names: Mapping[str, tuple[str, ...]], folded: Mapping[str, str] | None, dotted: bool
) -> dict[str, str]:
    """Each role that holds a value, and its field (as ``_holding`` finds it)."""
    found: dict[str, str] = {}
    get = record.get
    for role, role_names in names.items():
        for name in role_names:  # the common case, inlined: a name as written holds the value
            if get(name) is not None:
                found[role] = name
                break
        else:
            name = _holding(record, role_names, folded) if folded is not None or dotted else None
            if name is not None:
                found[role] = name
    return found


def _holding(record: Mapping[str, Any], names: tuple[str, ...], folded: Mapping[str, str] | None) -> str | None:
    """The first of ``names`` whose field holds a value (as written, then, with ``folded``, ignoring case)."""
    get = record.get
    for name in names:
        if get(name) is not None or ("." in name and _nested(record, name) is not None):
            return name
    if folded is not None:
        for name in names:
            found = folded.get(name.lower())
            if found is not None and record[found] is not None:
                return found
    return None


def match_shape(
    record: Mapping[str, Any], fmt: RecordFormat | None = None, columns: ColumnMapping | None = None
) -> tuple[Shape, Fields]:
    """The first shape (of format ``fmt``, when given) that ``record`` fits, and the record seen through it: names
    as written first, then ignoring case. A forced format that no shape fits is read with all of its shapes' names,
    so that the renderer says which field is missing. Raises ``RecordError`` for a record no shape fits, or one
    that lacks a field ``columns`` maps."""
    if not isinstance(record, Mapping):
        raise RecordError(f"record must be a JSON object, got {json_type_name(record)}")
    if columns is not None:
        _check_mapped_fields(record, columns)
    if fmt is not None and fmt not in FORMATS:
        raise RecordError(f"unknown record format {fmt!r}; expected one of {', '.join(FORMATS)}")
    candidates = _candidates(fmt, columns)
    fit = _first_exact_fit(record, fmt, columns) or _first_fit(record, candidates, _folded(record))
    if fit is not None:
        candidate, folded = fit
        return candidate.shape, Fields(record, candidate.names, folded=folded, columns=columns, dotted=candidate.dotted)
    if fmt is not None:
        shape, names = _union(fmt, columns)
        return shape, Fields(record, names, columns=columns)
    seen = sorted(str(key) for key in record)
    raise RecordError(f"no known record format fits the fields {seen}; {expected_formats()}")


def _first_exact_fit(
    record: Mapping[str, Any], fmt: RecordFormat | None, columns: ColumnMapping | None
) -> tuple[_Candidate, None] | None:
    """``_first_fit`` with names as written, which depends only on the fields that hold a value: the answer for
    each such set of fields is kept, as the records of one dataset share a few (unless a need is a dotted name)."""
    candidates = _candidates(fmt, columns)
    if len(record) > _CACHED_FIELDS or _dotted_needs(fmt, columns):
        return _first_fit(record, candidates, None)
    index = _exact_fit_index(fmt, columns, frozenset(key for key, value in record.items() if value is not None))
    return (candidates[index], None) if index is not None else None


_CACHED_FIELDS = 64
"""Records of more fields than this are matched afresh: the cache's keys stay small whatever the input."""


@lru_cache(maxsize=4096)
def _exact_fit_index(fmt: RecordFormat | None, columns: ColumnMapping | None, holding: frozenset[Any]) -> int | None:
    fit = _first_fit(dict.fromkeys(holding, True), _candidates(fmt, columns), None)
    return None if fit is None else _candidates(fmt, columns).index(fit[0])


@lru_cache(maxsize=64)
def _dotted_needs(fmt: RecordFormat | None, columns: ColumnMapping | None) -> bool:
    candidates = _candidates(fmt, columns)
    return any("." in name for candidate in candidates for names in candidate.needs for name in names)


def _first_fit(
    record: Mapping[str, Any], candidates: tuple[_Candidate, ...], folded: Mapping[str, str] | None
) -> tuple[_Candidate, Mapping[str, str] | None] | None:
    return next(((candidate, folded) for candidate in candidates if candidate.fits(record, folded)), None)


def expected_formats() -> str:
    """The formats and the fields that make each, for error messages."""
    return (
        "expected one of alpaca (instruction/input/output, prompt/response, question/answer, query/response, "
        "problem/solution, input/output, instruction/instances), sharegpt (conversations), messages (messages or "
        "turns), preference (chosen + rejected, or preferred_output + non_preferred_output), prompt_completion "
        "(prompt + completion), unpaired_preference (prompt + completion + label), stepwise_supervision (prompt + "
        "completions + labels), prompt_only (prompt or question alone), text (text); or map the fields with columns"
    )


def _check_mapped_fields(record: Mapping[str, Any], columns: ColumnMapping) -> None:
    for role, name in columns.fields().items():
        if not _exists(record, name):
            raise RecordError(f"field {name!r} (mapped to {role} by columns) is missing")


@lru_cache(maxsize=64)
def _candidates(fmt: RecordFormat | None, columns: ColumnMapping | None) -> tuple[_Candidate, ...]:
    """The shapes to try, in order, each with its names as ``columns`` changes them."""
    candidates = []
    for shape in SHAPES:
        if fmt in (None, shape.format):
            names = _mapped_names(shape.names, columns)
            needs = tuple(tuple(name for role in roles for name in names.get(role, ())) for roles in shape.needs)
            dotted = any("." in name for role_names in names.values() for name in role_names)
            candidates.append(_Candidate(shape, names, needs, dotted))
    return tuple(candidates)


@lru_cache(maxsize=64)
def _union(fmt: RecordFormat, columns: ColumnMapping | None) -> tuple[Shape, Mapping[str, tuple[str, ...]]]:
    """One shape holding the names of every shape of ``fmt``."""
    shapes = [shape for shape in SHAPES if shape.format == fmt]
    names: dict[str, tuple[str, ...]] = {}
    for shape in shapes:
        for role, role_names in shape.names.items():
            names[role] = tuple(dict.fromkeys((*names.get(role, ()), *role_names)))
    return shapes[0], _mapped_names(names, columns)


def _mapped_names(names: Mapping[str, tuple[str, ...]], columns: ColumnMapping | None) -> Mapping[str, tuple[str, ...]]:
    """A shape's names with ``columns`` applied: a mapped role is read from its field alone (in every shape), and
    no other role is read from a mapped field."""
    if columns is None:
        return names
    mapped = columns.fields()
    taken = set(mapped.values())
    result = {role: tuple(name for name in role_names if name not in taken) for role, role_names in names.items()}
    result.update({role: (name,) for role, name in mapped.items()})
    return result


def _folded(record: Mapping[str, Any]) -> dict[str, str]:
    """Each field name in lower case, and the field (the first of several that differ only in case)."""
    folded: dict[str, str] = {}
    for key in record:
        if isinstance(key, str):
            folded.setdefault(key.lower(), key)
    return folded


def _nested(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``input.messages``); None where a step is missing."""
    value: Any = record
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def _exists(record: Mapping[str, Any], name: str) -> bool:
    """Whether the record has the field (null or not), or the dotted path leads to one."""
    if name in record:
        return True
    *parents, last = name.split(".")
    if not parents:
        return False
    parent = _nested(record, ".".join(parents))
    return isinstance(parent, Mapping) and last in parent
