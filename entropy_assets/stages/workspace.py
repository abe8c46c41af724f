"""Where a pipeline's steps write their files and report what they do."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from entropy_assets.storage import Storage


@dataclass(frozen=True)
class Workspace:
    """A pipeline's outputs: every step writes under ``storage`` in a folder named after the pipeline, and reports
    to ``log`` (a Dagster run's log, or this package's logger)."""

    name: str
    storage: Storage
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("entropy_assets"))

    def folder(self, *parts: str) -> tuple[str, ...]:
        """The storage folder of a step's outputs: ``<pipeline>/<parts>``."""
        return (self.name, *parts)
