"""Checkpoints of a long selection: its state between rounds, saved atomically, so that a run killed mid-way
resumes from its last saved round and ends with exactly the selection an uninterrupted run makes.

A checkpoint is one ``.npz`` file (numpy arrays, no pickles) holding a fingerprint of its inputs: a checkpoint of
another pool or other settings is ignored with a message, as is one that cannot be read.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from entropy_assets.sources import STALE_TEMPORARY_SECONDS, write_atomically

CHECKPOINT_FORMAT = 1
"""Bumped whenever what a checkpoint holds changes: a checkpoint of another format is ignored."""

_log = logging.getLogger(__name__)


@dataclass
class SelectionCheckpoint:
    """Where a selection saves its state, and how often: after a completed round once ``every_seconds`` have
    passed since the last save (0: after every round), and after the last round. The caller removes it once the
    result is stored.

    A save of Alpaca 52K's state (1 MB, synced) takes 7 ms (up to 25 ms on a busy machine) against rounds of about
    100 ms: ZIP of 10,000 saving every round took 13% longer; every 2 s, 5 saves, no difference beyond the noise
    (``benchmarks/selection_resume.py``). A kill then loses at most 2 s of work.
    """

    path: Path
    every_seconds: float = 2.0
    warn: Callable[[str], None] | None = None
    """Where messages about ignored checkpoints go (default: this module's logger)."""
    info: Callable[[str], None] | None = None
    """Where the message of a resumed run goes (default: this module's logger)."""
    resumed_from_round: int = field(default=0, init=False)
    """The rounds the last ``load`` found completed (0 when it found none)."""
    saves: int = field(default=0, init=False)
    save_seconds: float = field(default=0.0, init=False)
    _last_save: float = field(default_factory=time.monotonic, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def part(self, name: str) -> SelectionCheckpoint:
        """A checkpoint beside this one for a part of the run (a shard, a final pass), removed with it."""
        return SelectionCheckpoint(
            self.path.with_name(f"{self.path.name}.{name}"), self.every_seconds, self.warn, self.info
        )

    def load(self, fingerprint: str) -> dict[str, np.ndarray] | None:
        """The saved state, or None when there is none, it cannot be read or it is of other inputs."""
        self.resumed_from_round = 0
        self._last_save = time.monotonic()
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                state = {name: saved[name] for name in saved.files}
            saved_format, saved_fingerprint = int(state.pop("format")), str(state.pop("fingerprint"))
            rounds = int(state["rounds"]) if "rounds" in state else 0
        except Exception as error:  # a truncated or foreign file: any reading error means starting afresh
            self._warn(f"checkpoint {self.path} is unreadable ({type(error).__name__}: {error}); starting afresh")
            return None
        if saved_format != CHECKPOINT_FORMAT or saved_fingerprint != fingerprint:
            self._warn(f"checkpoint {self.path} is of other inputs or settings; ignoring it and starting afresh")
            return None
        self.resumed_from_round = rounds
        (self.info or _log.info)(f"resumed from round {rounds} (checkpoint {self.path})")
        return state

    def due(self) -> bool:
        """Whether a save now respects ``every_seconds``."""
        return time.monotonic() - self._last_save >= self.every_seconds

    def save(self, fingerprint: str, state: Mapping[str, np.ndarray | int | float]) -> None:
        """Write ``state`` atomically: a temporary file beside the checkpoint, synced, then renamed over it."""
        started = time.perf_counter()
        arrays = {name: np.asarray(value) for name, value in state.items()}
        arrays["format"] = np.asarray(CHECKPOINT_FORMAT)
        arrays["fingerprint"] = np.asarray(fingerprint)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomically(self.path, write)
        self._last_save = time.monotonic()
        self.saves += 1
        self.save_seconds += time.perf_counter() - started

    def remove(self) -> None:
        """Delete the checkpoint, its parts, and temporary files that a save killed over an hour ago left (a
        younger one may be another process's save in progress, of the same partition run twice at once)."""
        folder, name = self.path.parent, self.path.name
        if not folder.is_dir():
            return
        stale = time.time() - STALE_TEMPORARY_SECONDS
        for entry in folder.iterdir():
            if entry.name == name or entry.name.startswith(f"{name}."):
                entry.unlink(missing_ok=True)
            elif entry.name.startswith(f".{name}.") and entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < stale:
                        entry.unlink()

    def _warn(self, message: str) -> None:
        (self.warn or _log.warning)(message)
