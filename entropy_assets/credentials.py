"""Credentials stay out of settings: they come from environment variables only.

A pipeline's settings are shown in the Dagster UI, written into asset metadata (data paths, the storage path) and
kept with every run, so a token pasted into them would be kept and shown too. The Hugging Face Hub reads its token
from ``HF_TOKEN``; fsspec stores read theirs from their own variables (``AWS_ACCESS_KEY_ID``, ...).
``inline_credential`` finds what should not be there, without ever repeating it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["CREDENTIAL_VARIABLES", "inline_credential", "refuse_inline_credentials"]

CREDENTIAL_VARIABLES: tuple[str, ...] = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
)
"""Variables whose values are secrets: a setting that holds one of their values verbatim is refused."""

_SECRET_QUERY_NAMES = frozenset(
    {
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "password",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_MIN_SECRET_LENGTH = 8
_ADVICE = (
    "settings are shown in the Dagster UI and kept with every run, so credentials must come from environment "
    "variables: HF_TOKEN for the Hugging Face Hub, the store's own variables (AWS_ACCESS_KEY_ID, ...) for fsspec URLs"
)


def inline_credential(value: str) -> str | None:
    """What kind of credential ``value`` carries (a password in a URL, a token in its query, a Hugging Face token,
    the value of a secret environment variable), or None. The answer never includes the credential."""
    if "://" in value:
        try:
            url = urlsplit(value)
            password = url.password
        except ValueError:
            password = None
        else:
            if any(name.lower() in _SECRET_QUERY_NAMES for name, _ in parse_qsl(url.query, keep_blank_values=True)):
                return "a credential in the URL's query"
        if password:
            return "a password in the URL"
    if _HF_TOKEN.search(value):
        return "a Hugging Face access token"
    for variable in CREDENTIAL_VARIABLES:
        secret = os.environ.get(variable, "")
        if len(secret) >= _MIN_SECRET_LENGTH and secret in value:
            return f"the value of the environment variable {variable}"
    return None


def refuse_inline_credentials(settings: Mapping[str, Any], owner: str) -> None:
    """Raise ``ValueError`` naming the setting (never its value) if any string in ``settings`` holds a credential."""
    for where, value in _strings(settings, ""):
        kind = inline_credential(value)
        if kind is not None:
            raise ValueError(f"{owner}: setting {where} holds {kind}; {_ADVICE}")


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a nested settings value, with its place (``paths[0]``, ``training.command[2]``)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")
