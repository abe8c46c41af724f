"""What observing the raw data and building the pool hand on (``pool.observe_raw_data``, ``pool.build_pool``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from .metadata import FilePath, MetadataReader


@dataclass(frozen=True)
class RawDataResult:
    """An observation of the raw data: its version and the hash of every file."""

    paths: tuple[str, ...]
    version: str
    file_hashes: Mapping[str, str]

    def to_metadata(self) -> dict[str, Any]:
        return {"paths": ", ".join(self.paths), "data_version": self.version, "files": dict(self.file_hashes)}

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = MetadataReader(values, "raw_data")
        return cls(tuple(read.text("paths").split(", ")), read.text("data_version"), read.mapping("files"))


@dataclass(frozen=True)
class PoolResult:
    """Every record of a raw data version as canonical text (parquet), and what loading it kept and dropped."""

    path: str
    """Where the pool is (shown in the UI); ``file`` is the same relative to the storage."""
    file: str
    version: str
    """The pool's version: the raw data version it was read from, and its reading settings where not the default
    (``versions.pool_version``)."""
    records_read: int
    records_kept: int
    dropped: Mapping[str, int]
    invalid_utf8: int
    bytes: int
    formats: Mapping[str, int]
    files: int
    files_parsed: int
    """Files parsed for this build: new or changed since an earlier build (the others' rows were reused)."""
    records_parsed: int
    shard_file: str | None = None
    """With shards: a copy of the scored columns ordered by shard, so that each shard is read on its own."""
    shard_fingerprints: Mapping[str, str] | None = None
    raw_data_version: str = ""
    """The raw data version the pool was read from ("": the pool's version)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Stored files this output was made from (relative to the storage): none."""
        return ()

    def to_metadata(self) -> dict[str, Any]:
        shards: dict[str, Any] = {}
        if self.shard_file is not None and self.shard_fingerprints is not None:
            shards = {"shard_file": self.shard_file, "shard_fingerprints": dict(self.shard_fingerprints)}
        return {
            "path": FilePath(self.path),
            "file": self.file,
            "dagster/row_count": self.records_kept,
            "records_read": self.records_read,
            "records_kept": self.records_kept,
            "dropped": dict(self.dropped),
            "invalid_utf8_replaced": self.invalid_utf8,
            "bytes": self.bytes,
            "formats": dict(self.formats),
            "files": self.files,
            "files_parsed": self.files_parsed,
            "files_reused": self.files - self.files_parsed,
            "records_parsed": self.records_parsed,
            "records_reused": self.records_read - self.records_parsed,
            "raw_data_version": self.raw_data_version or self.version,
            "version": self.version,
            **shards,
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = MetadataReader(values, "pool")
        sharded = read.has("shard_file")
        return cls(
            path=read.text("path"),
            file=read.text("file"),
            version=read.text("version"),
            records_read=read.integer("records_read"),
            records_kept=read.integer("records_kept"),
            dropped=read.mapping("dropped"),
            invalid_utf8=read.integer("invalid_utf8_replaced"),
            bytes=read.integer("bytes"),
            formats=read.mapping("formats"),
            files=read.integer("files"),
            # a pool built before parts were reused parsed every file
            files_parsed=read.integer("files_parsed" if read.has("files_parsed") else "files"),
            records_parsed=read.integer("records_parsed" if read.has("records_parsed") else "records_read"),
            shard_file=read.text("shard_file") if sharded else None,
            shard_fingerprints=read.mapping("shard_fingerprints") if sharded else None,
            raw_data_version=read.text("raw_data_version") if read.has("raw_data_version") else "",
        )
