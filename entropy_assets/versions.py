"""Every version and fingerprint the pipeline names its outputs and checkpoints by, in one place.

A version is a short hash of exactly what determines an output: the same inputs, settings and code give the same
version, so a versioned file is written once and an unchanged input makes nothing new. Fingerprints are full
hashes that decide whether a checkpoint belongs to a run.

- raw data: ``data_version`` (every file's content), with ``file_hashes`` recorded for audits;
- pool: ``pool_version`` (the raw data version it read, and how it was read where that is not the default);
- scores: ``scores_version`` (the pool's version, or a shard's ``shard_fingerprints``, the compressor's
  ``compressor_settings_hash`` and the quality gate's ``quality_settings_hash``), ``gathered_scores_version``
  for a pool's shards taken together;
- subset: ``subset_version`` (the samples it holds, in order, and the form they are exported in), and
  ``selection_key`` (what a selection starts from: pool, scores, configuration, an earlier subset it warm-starts
  from), which names its checkpoint; ``subset_content_version`` (the samples a run trained on, in order);
- runs and checkpoints: ``settings_hash`` of what shapes a run, ``input_fingerprint`` of a selection's inputs,
  ``run_fingerprint`` of a training run's data and settings, ``location_hash`` of a storage's base path;
- ``files_signature``: names, sizes and modification times, to skip hashing unchanged files.

A sample's content hash is not here: it is a column of the pool itself, made where records become rows
(``sources.builder``), and every version above that names samples is built from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from entropy_assets.compression import Compressor
from entropy_assets.quality import QualitySettings
from entropy_assets.scoring import settings_key, shard_expr, shard_keys
from entropy_assets.sources.discovery import Paths, data_files
from entropy_assets.sources.errors import SourceError

SUBSET_CODE_VERSION = "selected-subset-3"
"""The code version of selection: part of every subset's version, and the ``selected_subset`` asset's."""


def short_hash(text: str | bytes, length: int) -> str:
    """The first ``length`` hex digits of the sha256 of ``text``."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:length]


def settings_hash(settings: Mapping[str, Any], length: int = 12) -> str:
    """A short hash of JSON-ready settings, independent of their order."""
    return short_hash(json.dumps(settings, sort_keys=True), length)


def file_hashes(paths: Paths) -> dict[str, str]:
    """The sha256 of every file at ``paths``, by path: what an audit needs to say exactly which bytes a data
    version was."""
    hashes: dict[str, str] = {}
    for file in data_files(paths):
        try:
            with open(file, "rb") as handle:
                hashes[str(file)] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise SourceError(f"{file}: cannot be read for its hash ({exc.strerror or exc}); was it removed?") from exc
    return hashes


def data_version(paths: Paths, hashes: Mapping[str, str] | None = None) -> str:
    """A version of the data at ``paths`` from the content of every file: any byte changed, a file added or
    removed, gives a new version; re-reading unchanged files gives the same one. ``hashes`` (from
    ``file_hashes``) saves reading the files again. A pool is named by the version of the data it read."""
    digest = hashlib.sha256()
    for name, value in (hashes if hashes is not None else file_hashes(paths)).items():
        path = Path(name)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SourceError(f"{path}: vanished after it was hashed ({exc.strerror or exc})") from exc
        digest.update(f"{path.name}\0{size}\0".encode())
        digest.update(bytes.fromhex(value))
    return digest.hexdigest()[:24]


def pool_version(raw_version: str, reading: Mapping[str, Any] | None) -> str:
    """The version of a pool: the raw data version it read, and how it read it (``reading``: a forced format, a
    column mapping) when not the default. A changed mapping makes another pool; a pool read the default way is
    named by the raw data version alone."""
    if not reading:
        return raw_version
    return short_hash(f"{raw_version}\n{json.dumps(reading, sort_keys=True)}", 24)


def files_signature(paths: Paths) -> str:
    """A cheap fingerprint of the files at ``paths`` (names, sizes, modification times): when it is unchanged, their
    content need not be hashed again."""
    entries = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in data_files(paths)]
    return short_hash(json.dumps(entries), 16)


def compressor_settings_hash(compressor: Compressor) -> str:
    """8 hex digits that name the compressor's settings in the scores' versions and file names."""
    return short_hash(settings_key(compressor), 8)


def shard_fingerprints(pool: pl.DataFrame, shards: int) -> dict[str, str]:
    """Each shard's fingerprint (16 hex digits): a hash of its samples' ids and content hashes, in pool order. Equal
    fingerprints mean equal scores, row for row."""
    fingerprints = ShardFingerprints(shards)
    fingerprints.update(pool)
    return fingerprints.result()


class ShardFingerprints:
    """``shard_fingerprints`` of a pool seen a piece at a time, in order: the same digests as of the whole."""

    def __init__(self, shards: int) -> None:
        self._shards = shards
        self._keys = shard_keys(shards)
        self._digests = [hashlib.sha256() for _ in self._keys]
        self._started = [False] * shards

    def update(self, rows: pl.DataFrame) -> None:
        """Count the next ``rows`` of the pool (columns ``id`` and ``content_hash``)."""
        grouped = (
            rows.select(shard=shard_expr(self._shards), row=pl.concat_str("id", "content_hash", separator="\t"))
            .group_by("shard", maintain_order=True)
            .agg("row")
        )
        for shard, shard_rows in grouped.iter_rows():
            digest = self._digests[shard]
            if self._started[shard]:
                digest.update(b"\n")
            digest.update("\n".join(shard_rows).encode())
            self._started[shard] = True

    def result(self) -> dict[str, str]:
        """Each shard's fingerprint, by shard key."""
        return {key: digest.hexdigest()[:16] for key, digest in zip(self._keys, self._digests, strict=True)}


def scores_version(samples: str, settings: str) -> str:
    """The version of scores: their samples (a pool's version, or a shard's fingerprint) and their settings (the
    compressor's ``compressor_settings_hash`` and the quality gate's ``quality_settings_hash``)."""
    return f"{samples}.{settings}"


def quality_settings_hash(quality: QualitySettings) -> str:
    """8 hex digits that name the quality gate's settings (and its signals' code version) in the scores' versions."""
    return settings_hash(quality.describe(), 8)


def gathered_scores_version(shard_versions: Mapping[str, str]) -> str:
    """The version of a pool's scores gathered from its shards: a hash of every shard's scores version."""
    return short_hash("\n".join(shard_versions[shard] for shard in sorted(shard_versions)), 24)


def subset_version(content_hashes: Sequence[str], export_suffix: str) -> str:
    """The version of a subset: the content of its samples, in order, and the form they are exported in. A
    selection that lands on the same samples makes the same version, so nothing downstream runs again."""
    return short_hash("\n".join([*content_hashes, export_suffix, SUBSET_CODE_VERSION]), 16)


def selection_key(pool_version: str, scores: str, config: Mapping[str, Any], warm_from: str | None = None) -> str:
    """What a selection starts from, known before it runs: its pool, its scores, the method's configuration (as the
    selection records it), the subset version it warm-starts from (if any) and ``SUBSET_CODE_VERSION``. It names
    the selection's checkpoint, so that only a rerun of the same selection resumes."""
    inputs = [pool_version, scores, json.dumps(config, sort_keys=True), warm_from or "", SUBSET_CODE_VERSION]
    return short_hash("\n".join(inputs), 16)


def subset_content_version(content_hashes: Sequence[str]) -> str:
    """A version of a subset from its samples' content, in order: what a training run trained on."""
    return short_hash("\n".join(content_hashes), 24)


def location_hash(base_path: str) -> str:
    """12 hex digits that name a storage's base path, for local folders kept on its behalf."""
    return short_hash(base_path, 12)


def input_fingerprint(ids: Iterable[str], data: Iterable[bytes], settings: Mapping[str, Any]) -> str:
    """A hash of a selection's samples (ids and the bytes a method reads, in pool order) and of its settings."""
    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    for sample_id, sample in zip(ids, data, strict=True):
        encoded = sample_id.encode()
        digest.update(len(encoded).to_bytes(8, "little") + encoded + len(sample).to_bytes(8, "little"))
        digest.update(sample)
    return digest.hexdigest()


def run_fingerprint(settings: Mapping[str, Any], arrays: Sequence[np.ndarray | None]) -> str:
    """A hash of what determines a training run's results: its JSON-ready ``settings`` and its data (``arrays``,
    each absent or an array of tokens)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8"))
    for array in arrays:
        digest.update(b"none" if array is None else b"%d:" % array.size)
        if array is not None:
            digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))  # the bytes, not a copy of them
    return digest.hexdigest()
