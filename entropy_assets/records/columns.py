"""A column mapping: which of a dataset's own fields holds each canonical role, and how its conversations name
their speakers. In the spirit of LLaMA-Factory's ``dataset_info.json`` (``columns`` and ``tags``) and Axolotl's
``field_*`` settings: ``ColumnMapping(prompt="Instruction", response="Output")``, in YAML ``columns: {prompt:
Instruction, response: Output}``, on the command line ``--columns prompt=Instruction,response=Output``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ROLES: tuple[str, ...] = (
    "system",
    "prompt",
    "input",
    "response",
    "completion",
    "messages",
    "chosen",
    "rejected",
    "label",
    "text",
    "history",
    "tools",
    "completions",
    "labels",
)
"""The canonical roles a field can be mapped to."""

TAGS: dict[str, str] = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
    "observation_tag": "observation",
    "function_tag": "function_call",
}
"""Speaker-tag settings and the role each names in the canonical text."""


def _role(description: str) -> Any:
    return Field(default=None, description=description)


class ColumnMapping(BaseModel):
    """The fields of a dataset that hold each canonical role, and the keys and speaker names of its conversations.

    A role left unset is found under its usual names; a role that is set is read from that field only (a dotted
    name such as ``input.messages`` reaches into an object). A record that lacks a mapped field is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str | None = _role("A system prompt (string).")
    prompt: str | None = _role("The instruction or prompt: a string, or a list of messages.")
    input: str | None = _role("Text appended to the prompt in the same user turn (Alpaca's input).")
    response: str | None = _role("The answer (string).")
    completion: str | None = _role("The completion: a string, or a list of messages.")
    messages: str | None = _role("The conversation: a list of messages (OpenAI) or turns (ShareGPT).")
    chosen: str | None = _role("The preferred response of a preference pair.")
    rejected: str | None = _role("The dispreferred response of a preference pair.")
    label: str | None = _role("An unpaired preference's label: kept in provenance, never in the text.")
    text: str | None = _role("Plain text for language modelling.")
    history: str | None = _role("Earlier [user, assistant] pairs (LLaMA-Factory's Alpaca history).")
    tools: str | None = _role("Tool schemas (a string or a list).")
    completions: str | None = _role("Stepwise supervision's steps (a list of strings).")
    labels: str | None = _role("Stepwise supervision's labels: kept in provenance, never in the text.")
    role_tag: str | None = Field(default=None, description="The key of a turn's speaker (from, role).")
    content_tag: str | None = Field(default=None, description="The key of a turn's text (value, content).")
    user_tag: str | None = Field(default=None, description="The speaker name of user turns.")
    assistant_tag: str | None = Field(default=None, description="The speaker name of assistant turns.")
    system_tag: str | None = Field(default=None, description="The speaker name of system turns.")
    observation_tag: str | None = Field(default=None, description="The speaker name of tool results.")
    function_tag: str | None = Field(default=None, description="The speaker name of tool calls.")

    @model_validator(mode="after")
    def _check(self) -> ColumnMapping:
        values = self.model_dump(exclude_none=True)
        if not values:
            raise ValueError(f"a column mapping needs at least one of {', '.join(ROLES)} or a tag")
        for name, value in values.items():
            if not value.strip():
                raise ValueError(f"column mapping: {name} must name a field, got an empty string")
        fields = self.fields()
        taken: dict[str, str] = {}
        for role, field in fields.items():
            if field in taken:
                raise ValueError(f"column mapping: field {field!r} is mapped to both {taken[field]} and {role}")
            taken[field] = role
        speakers = self.speakers()
        if len(speakers) < len([tag for tag in TAGS if getattr(self, tag) is not None]):
            raise ValueError("column mapping: two speaker tags name the same speaker")
        return self

    def fields(self) -> dict[str, str]:
        """Each mapped role and the field that holds it."""
        return {role: value for role in ROLES if (value := getattr(self, role)) is not None}

    def speakers(self) -> dict[str, str]:
        """Each mapped speaker name and the role it stands for (user, assistant, system, observation, ...)."""
        return {value: role for tag, role in TAGS.items() if (value := getattr(self, tag)) is not None}

    @classmethod
    def parse(cls, text: str) -> ColumnMapping:
        """A mapping from ``role=field`` pairs separated by commas (``prompt=Instruction,response=Output``)."""
        values: dict[str, str] = {}
        for pair in text.split(","):
            if not pair.strip():
                continue
            role, equals, field = pair.partition("=")
            if not equals:
                raise ValueError(f"--columns: {pair.strip()!r} is not role=field (e.g. prompt=Instruction)")
            if role.strip() in values:
                raise ValueError(f"--columns: {role.strip()} is given twice")
            values[role.strip()] = field.strip()
        try:
            return cls(**values)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            known = ", ".join([*ROLES, "role_tag", "content_tag", *TAGS])
            if problem["type"] == "extra_forbidden":
                raise ValueError(f"--columns: {where} is not a role or tag; expected one of {known}") from error
            raise ValueError(f"--columns: {problem['msg'].removeprefix('Value error, ')}") from error
