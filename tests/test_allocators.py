"""Importing entropy_assets has polars' and pyarrow's allocators give freed memory back, unless told otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from entropy_assets.allocators import RETURN_FREED_MEMORY

NAMES = list(RETURN_FREED_MEMORY)
SHOW = f"import json, os, entropy_assets; print(json.dumps({{k: os.environ.get(k) for k in {NAMES!r}}}))"


def _environment_after_import(**preset: str) -> dict[str, str | None]:
    environment = {k: v for k, v in os.environ.items() if k not in RETURN_FREED_MEMORY} | preset
    out = subprocess.run([sys.executable, "-c", SHOW], env=environment, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_import_sets_the_allocators_and_keeps_a_users_setting() -> None:
    assert _environment_after_import() == RETURN_FREED_MEMORY
    kept = _environment_after_import(MIMALLOC_PURGE_DELAY="250")
    assert kept["MIMALLOC_PURGE_DELAY"] == "250"
    assert kept["_RJEM_MALLOC_CONF"] == RETURN_FREED_MEMORY["_RJEM_MALLOC_CONF"]
