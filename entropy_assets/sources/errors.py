"""The error every reader raises for input it cannot read."""

from __future__ import annotations


class SourceError(ValueError):
    """Input that cannot be read: the message names the file and, where it applies, the line or record."""
