"""The error a record that does not fit its format raises, and the JSON type names its messages use."""

from __future__ import annotations

from typing import Any

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


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type (string, array, object, ...), for error messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
