"""The settings of one subset (a method at a budget, how it is exported and refreshed) and how often a selection
saves its checkpoint: what the subset step and hierarchical ZIP's shard step both read (``subset`` ->
``shard_selection`` -> here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from entropy_assets.selection.methods import SelectionConfig
from entropy_assets.sources import SourceColumns

CHECKPOINT_SECONDS = 2.0
"""A ZIP subset saves its checkpoint after a completed round once this many seconds have passed since the last
save: a kill loses at most this much work, and the saves cost no measurable time (every round: +13% on Alpaca
52K, ``benchmarks/selection_resume.py``)."""

Reselect = Literal["warm", "full"]


@dataclass(frozen=True)
class SubsetSettings:
    """One subset: a method at a budget, its validated configuration, the evaluation samples held out of selection,
    the form its records are exported in, and how a refresh re-selects it."""

    method: str
    budget: int
    config: SelectionConfig
    holdout: int = 0
    eval_paths: tuple[str, ...] = ()
    """Evaluation files: pool samples with the content of one of their records are held out too."""
    export_suffix: str = ".jsonl"
    """The exported records' file suffix; ``input``: that of the files they were read from, where they share one."""
    reselect: Reselect = "warm"
    """``warm``: a refresh starts from the previous version (when made with the same configuration); ``full``:
    every refresh selects from scratch."""
    full_every: int | None = None
    """With ``warm``: every this many refreshes, a full re-selection (and the drift of the warm one recorded)."""
    columns: SourceColumns = field(default_factory=SourceColumns)
    """The column mappings the pool was read with: the provenance's ``labels`` are read with them."""

    @property
    def folder(self) -> str:
        """The storage folder of this subset's versions, and of its training runs': ``<method>_<budget>``."""
        return f"{self.method}_{self.budget}"
