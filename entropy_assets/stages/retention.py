"""Explicit pruning of old output versions: never automatic, never of a file something kept still points to.

Outputs are written under their versions and never overwritten, so storage grows with every data version.
``plan_prune`` lists what may go (dry run), from the results the event log recorded (the Dagster plugin reads them:
``entropy_assets.dagster.history``); ``prune`` deletes exactly that list.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from upath import UPath

from entropy_assets.storage import Storage

from .metadata import StoredResult, written_under
from .pool import SHARD_PIECES
from .pool_features import FEATURES_FOLDER
from .pool_result import PoolResult
from .scores_result import ScoresResult
from .shard_selection_result import ShardSelectionResult
from .subset_result import SubsetResult
from .training_result import TrainingResult

VERSIONED_ASSETS: dict[str, type[PoolResult | ScoresResult | ShardSelectionResult | SubsetResult | TrainingResult]] = {
    "pool": PoolResult,
    "compression_scores": ScoresResult,
    "shard_selection": ShardSelectionResult,
    "selected_subset": SubsetResult,
    "training_run": TrainingResult,
}
"""The assets whose outputs are versioned files, with the result their metadata holds."""


@dataclass(frozen=True)
class PrunePlan:
    """Files and pool folders (with their sibling exports and plots) that only older versions refer to, the stored
    parts of sources no pool left holds (with their shard pieces and features), and what is kept."""

    remove: tuple[UPath, ...]
    kept_versions: int
    kept_files: int

    def describe(self) -> str:
        lines = [f"keeping the last {self.kept_versions} version(s) of each output: {self.kept_files} file(s) kept"]
        lines += [f"  remove {path}" for path in self.remove] or ["  nothing to remove"]
        return "\n".join(lines)


def plan_prune(outputs: Mapping[str, Iterable[tuple[str | None, StoredResult]]], pipeline: str, keep: int) -> PrunePlan:
    """What ``prune`` would delete: the files of all but the ``keep`` latest versions of each output (per
    partition), except those a kept training run or subset still uses. ``outputs``: every materialization of each
    of ``pipeline``'s versioned assets (``VERSIONED_ASSETS``), as its partition and result, oldest first."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    kept: set[str] = set()
    older: set[str] = set()
    storage: Storage | None = None
    for name in VERSIONED_ASSETS:
        by_partition: dict[str | None, list[StoredResult]] = {}
        for partition, result in outputs.get(name, ()):
            by_partition.setdefault(partition, []).append(result)
            storage = written_under(result)
        for results in by_partition.values():
            files = list(dict.fromkeys(result.file for result in results))  # distinct, oldest first
            kept.update(files[-keep:])
            older.update(files[:-keep])
            kept.update(file for result in results if result.file in files[-keep:] for file in result.inputs)
    if storage is None:
        return PrunePlan((), keep, 0)
    remove = sorted({path for file in older - kept for path in _with_siblings(storage, file)}, key=str)
    protected = {path for file in kept for path in _with_siblings(storage, file)}
    remove = [path for path in remove if path not in protected]
    remove += _unlinked_parts(storage, pipeline, set(remove))
    return PrunePlan(tuple(remove), keep, len(protected))


POOL_VERSION = re.compile(r"[0-9a-f]{24}")
"""The name of a pool version's folder (``versions.pool_version``), which tells it from the folders beside it: the
parts, what is made of them, and the versions' shard-ordered copies (``SHARD_COPY``)."""
SHARD_COPY = re.compile(r"[0-9a-f]{24}\.shards(\d+)")


def _unlinked_parts(storage: Storage, pipeline: str, removed: set[UPath]) -> list[UPath]:
    """The stored parts of sources (``pool/parts/``) that no pool version left after pruning holds (a pool
    version's folder names each part it holds after its position, ``00000.<part>``), then what was made of them."""
    folder = storage.path(pipeline, "pool")
    parts = folder / "parts"
    if not parts.exists():
        return []
    kept = [entry for entry in folder.iterdir() if entry not in removed and entry.is_dir()]
    held = {file.name.split(".", 1)[1] for pool in kept if POOL_VERSION.fullmatch(pool.name) for file in pool.iterdir()}
    copied = {match[1] for entry in kept if (match := SHARD_COPY.fullmatch(entry.name))}
    unheld = sorted((part for part in parts.iterdir() if part.name not in held), key=str)
    return unheld + _made_of_unheld(folder, held, copied)


def _made_of_unheld(folder: UPath, held: set[str], copied: set[str]) -> list[UPath]:
    """What was made of the parts ``held`` does not name: their shard pieces (``shard_pieces/<shards>/<key>/<part>``)
    after their markers (``shard_pieces/<shards>/<part>.done``: a marker says its pieces are all there, so it goes
    first), the whole ``shard_pieces/<shards>`` of a number of shards that no version left was ``copied`` for, and
    their features (``part_features/<feature>/<part>``)."""
    markers: list[UPath] = []
    pieces: list[UPath] = []
    unused: list[UPath] = []
    for count in _folders(folder / SHARD_PIECES):
        if count.name not in copied:
            unused.append(count)
            continue
        for entry in count.iterdir():
            if entry.is_dir():
                pieces += [piece for piece in entry.iterdir() if piece.name not in held]
            elif entry.name.removesuffix(".done") not in held:
                markers.append(entry)
    features = [file for feature in _folders(folder / FEATURES_FOLDER) for file in feature.iterdir()]
    features = [file for file in features if file.name not in held]
    return [*sorted(markers, key=str), *sorted(pieces, key=str), *sorted(unused, key=str), *sorted(features, key=str)]


def _folders(folder: UPath) -> list[UPath]:
    """The folders in ``folder``, if it exists."""
    return [entry for entry in folder.iterdir() if entry.is_dir()] if folder.exists() else []


def prune(plan: PrunePlan) -> int:
    """Delete the files and folders ``plan`` lists; returns how many were deleted."""
    deleted = 0
    for path in plan.remove:
        if path.is_dir():
            path.fs.rm(path.path, recursive=True)
            deleted += 1
        elif path.exists():
            path.unlink()
            deleted += 1
    return deleted


def _with_siblings(storage: Storage, file: str) -> list[UPath]:
    """The file and the others written with it (exports, plots): same folder, same name up to the last suffix."""
    target = storage.path(file)  # a recorded file outside the storage is refused
    prefix = target.name[: -len(target.suffix)] + "." if target.suffix else target.name
    if not target.parent.exists():
        return []
    return [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
