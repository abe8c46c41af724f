"""Record formats of instruction-tuning data and the canonical text that stands for each record.

The canonical text is what gets compressed and compared: the content of a record rendered as turns
``"{role}: {content}"`` joined by newlines, with roles normalized so that the same exchange stored as Alpaca,
prompt-completion, ShareGPT or OpenAI messages yields the same bytes. Ids, bookkeeping fields, labels and weights
never enter it. Turns whose content is empty or whitespace-only are left out, so a record with no content renders
as "".

The package, by job: ``shapes`` (the layouts a record may take, as a table in precedence order, and detection),
``columns`` (a mapping of a dataset's own fields onto the canonical roles), ``render`` (turns and the texts made of
them) and ``errors``.
"""

from .columns import ROLES, TAGS, ColumnMapping
from .errors import RecordError, json_type_name
from .render import (
    ReadRecord,
    Turn,
    canonical_text,
    detect_format,
    normalize_role,
    preference_parts,
    read_record,
    render_turns,
    training_text,
)
from .shapes import FORMATS, SHAPES, RecordFormat, Shape, expected_formats

__all__ = [
    "FORMATS",
    "ROLES",
    "SHAPES",
    "TAGS",
    "ColumnMapping",
    "ReadRecord",
    "RecordError",
    "RecordFormat",
    "Shape",
    "Turn",
    "canonical_text",
    "detect_format",
    "expected_formats",
    "json_type_name",
    "normalize_role",
    "preference_parts",
    "read_record",
    "render_turns",
    "training_text",
]
