"""The documentation's table of formats (docs/formats.md) is what the code does: each example record detected as the
format and rendered to the canonical text the table shows, with the labels it shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

from entropy_assets.records import read_record

FORMATS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
ROW = re.compile(r"^\| [^|]+ \| `(\{.*\})` \| `(\w+)` \| `(\".*\")` \| (?:`(\{.*\})`)? \|$")


def test_every_row_of_the_table_of_formats_renders_as_shown() -> None:
    rows = [ROW.match(line) for line in FORMATS_PAGE.read_text(encoding="utf-8").splitlines()]
    found = [row for row in rows if row is not None]
    assert len(found) >= 20
    formats = set()
    for row in found:
        record, fmt, text, labels = row.groups()
        read = read_record(json.loads(record))
        assert (read.format, read.text) == (fmt, json.loads(text)), record
        assert dict(read.labels) == (json.loads(labels) if labels else {}), record
        formats.add(fmt)
    assert formats == {
        "alpaca",
        "sharegpt",
        "messages",
        "text",
        "prompt_completion",
        "prompt_only",
        "preference",
        "unpaired_preference",
        "stepwise_supervision",
    }
