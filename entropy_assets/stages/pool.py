"""Raw data to pool: the observation of the source files, and the pool built from them."""

from __future__ import annotations

from collections.abc import Sequence

from entropy_assets.scoring import write_shard_ordered
from entropy_assets.sources import SourceError, load_pool
from entropy_assets.versions import data_version, file_hashes, shard_fingerprints

from .results import PoolResult, RawDataResult
from .workspace import Workspace


def observe_raw_data(paths: Sequence[str]) -> RawDataResult:
    """The raw data's version, from the hash of every file: any changed byte is a new version."""
    hashes = file_hashes(paths)
    return RawDataResult(tuple(paths), data_version(paths, hashes), hashes)


def build_pool(
    workspace: Workspace, paths: Sequence[str], *, skip_malformed: bool = False, shards: int = 1
) -> PoolResult:
    """Every record at ``paths`` as canonical text, stored under the raw data version it was read from (once: a
    version already stored is kept). With ``shards`` above 1, also a copy ordered by content-hash shard, and each
    shard's fingerprint. Raises ``SourceError`` if the data changed while it was read: nothing is then written."""
    version = data_version(paths)
    try:
        loaded = load_pool(paths, skip_malformed=skip_malformed)
    except SourceError as error:  # a half-written record, say: if the data moved meanwhile, that is the cause
        _check_unchanged(paths, version, cause=error)
        raise
    _check_unchanged(paths, version)  # else the pool would be stored under a version it is not
    storage = workspace.storage
    folder = workspace.folder("pool")
    path = storage.write_version(loaded.frame, *folder, f"{version}.parquet")
    shard_file, fingerprints = None, None
    if shards > 1:  # scoring reads its shard from a copy of the pool ordered by shard
        ordered = storage.write_once(
            lambda local: write_shard_ordered(loaded.frame, shards, local), *folder, f"{version}.shards{shards}.parquet"
        )
        shard_file, fingerprints = storage.relative(ordered), shard_fingerprints(loaded.frame, shards)
    report = loaded.report
    return PoolResult(
        path=str(path),
        file=storage.relative(path),
        version=version,
        records_read=report.records_read,
        records_kept=report.records_kept,
        dropped=dict(report.dropped),
        invalid_utf8=report.invalid_utf8,
        bytes=report.bytes,
        formats=dict(report.formats),
        files=len(report.files),
        shard_file=shard_file,
        shard_fingerprints=fingerprints,
    )


def _check_unchanged(paths: Sequence[str], version: str, *, cause: SourceError | None = None) -> None:
    """Raise if the raw data at ``paths`` is no longer at ``version``: it changed while it was being read."""
    if data_version(paths) != version:
        raise SourceError(
            f"the raw data at {', '.join(paths)} changed while it was being read; nothing was written: materialize "
            "again once it has settled"
        ) from cause
