"""A pool's mix over each facet (``composition.FACETS``), the denominator of every subset's composition, read without
the pool's text: the sum of the counts each stored part keeps (computed once, as the part was parsed), less the
facets of the samples left out (held out, or excluded by the quality gate), which are read from the pool's light
columns and its stored ``script`` feature (``pool_features``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from entropy_assets.composition import FACETS, facet_frame, value_counts
from entropy_assets.sources.parts import part_facets
from entropy_assets.storage import Storage

from .pool_features import pool_features
from .pool_reads import pool_batches

_LIGHT_FACET_COLUMNS = ["content_hash", "source", "format", "n_bytes"]


def facet_counts(storage: Storage, file: str, excluded: Collection[str] = ()) -> dict[str, Counter[str]]:
    """How many samples of the pool have each value of each facet, leaving out every sample whose content hash is
    in ``excluded``: the sum of the counts its parts store (a part stored before parts held them is scanned), less
    the left-out samples' facets."""
    counts: dict[str, Counter[str]] = {facet: Counter() for facet in FACETS}
    target = storage.path(file)
    parts = sorted(target.iterdir(), key=lambda p: p.name) if target.is_dir() else [target]
    for part in parts:
        with part.open("rb") as handle:
            stored = part_facets(handle)
        if stored is None:
            for frame in _streamed_facets(storage, storage.relative(part)):
                _add(counts, value_counts(frame))
        else:
            _add(counts, stored)
    if len(excluded):
        for facet, held_counts in value_counts(facets_with_hashes(storage, file, excluded)).items():
            counts[facet].subtract(held_counts)
    return {facet: +counter for facet, counter in counts.items()}


def facets_with_hashes(storage: Storage, file: str, hashes: Collection[str]) -> pl.DataFrame:
    """The facets (``facet_frame``) of the pool's samples whose content hash is in ``hashes``, in pool order: their
    source, format and length from the pool's light columns, streamed a batch at a time, and their script from the
    pool's ``script`` feature. No text is read where the feature is stored (the pool step stores it)."""
    wanted = pa.array(list(hashes), type=pa.string())
    found: list[pl.DataFrame] = []
    positions: list[np.ndarray] = []
    offset = 0
    for batch in pool_batches(storage, file, _LIGHT_FACET_COLUMNS):
        mask = pc.is_in(batch.column("content_hash"), value_set=wanted)
        rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        if len(rows):
            positions.append(rows + offset)
            found.append(pl.DataFrame(pl.from_arrow(batch.filter(mask))))
        offset += batch.num_rows
    if not found:
        empty = pl.DataFrame(schema={"source": pl.String, "format": pl.String, "n_bytes": pl.Int64})
        return facet_frame(empty.with_columns(script=pl.lit(None, dtype=pl.String)))
    script = pool_features(storage, file, "script").gather("script", np.concatenate(positions))
    return facet_frame(pl.concat(found).with_columns(script))


def _streamed_facets(storage: Storage, file: str) -> Iterator[pl.DataFrame]:
    for batch in pool_batches(storage, file, ["source", "format", "text", "n_bytes"]):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield facet_frame(frame)


def _add(counts: dict[str, Counter[str]], more: dict[str, dict[str, int]]) -> None:
    for facet in FACETS:
        counts[facet].update(more.get(facet, {}))
