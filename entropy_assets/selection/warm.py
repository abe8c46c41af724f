"""Warm starts: a selection that begins from an earlier one over an earlier version of the pool.

The earlier selection's samples that are still in the pool with the same content are kept, in their order; those
that left the pool or changed are dropped. The method then fills the freed budget, and (ZIP in its default mode)
lets a new sample replace a kept one where the swap lowers the set's compression ratio. A data change thus costs
what changed, and the subset changes no more than the data did.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from entropy_assets.sources import write_atomically
from entropy_assets.versions import settings_hash

POOL_HASHES_KEY = b"entropy_assets.pool_content_hashes"
"""Where a provenance file keeps the content hashes of the pool it was chosen from (parquet key-value metadata):
what a later warm start needs to tell new samples from old."""


@dataclass(frozen=True)
class WarmStart:
    """An earlier selection to start from: its samples' ids and content hashes, in the order chosen.

    ``earlier_pool`` holds the content hashes of the pool it was chosen from: the samples of the current pool with
    other content are the new ones, which may replace kept samples. Without it, no sample counts as new and the
    selection only fills the freed budget."""

    ids: tuple[str, ...]
    content_hashes: tuple[str, ...]
    earlier_pool: Collection[str] | None = field(default=None, repr=False)

    @classmethod
    def from_provenance(cls, provenance: pl.DataFrame, earlier_pool: Collection[str] | None = None) -> WarmStart:
        """From a selection's stored provenance (``id`` and ``content_hash`` per sample, in ``rank`` order)."""
        missing = [name for name in ("id", "content_hash") if name not in provenance.columns]
        if missing:
            raise ValueError(f"a warm start needs the earlier selection's {' and '.join(missing)} per sample")
        ordered = provenance.sort("rank") if "rank" in provenance.columns else provenance
        return cls(tuple(ordered["id"].to_list()), tuple(ordered["content_hash"].to_list()), earlier_pool)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WarmStart:
        """From a provenance file that ``write_provenance`` wrote (the command line's ``--provenance``)."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable provenance file ({error})") from error
        if "content_hash" not in table.column_names:
            raise ValueError(
                f"{path}: a provenance file without content hashes (written before warm starts existed); select "
                "once with --provenance to start warm from it"
            )
        stored = (table.schema.metadata or {}).get(POOL_HASHES_KEY)
        earlier = None if stored is None else [stored[i : i + 32].decode() for i in range(0, len(stored), 32)]
        return cls.from_provenance(pl.from_arrow(table), earlier)  # type: ignore[arg-type]

    def kept(self, pool: pl.DataFrame) -> np.ndarray:
        """Positions in ``pool`` of the earlier samples still there with the same content, in the earlier order."""
        position = {
            (sample, content): row
            for row, (sample, content) in enumerate(zip(pool["id"], pool["content_hash"], strict=True))
        }
        found = (position.get(key) for key in zip(self.ids, self.content_hashes, strict=True))
        return np.array([row for row in found if row is not None], dtype=np.int64)

    def new(self, pool: pl.DataFrame) -> np.ndarray:
        """Positions in ``pool`` of samples whose content the earlier pool did not hold (none without it)."""
        if self.earlier_pool is None:
            return np.array([], dtype=np.int64)
        earlier = pl.Series(list(self.earlier_pool), dtype=pl.String)
        return np.flatnonzero(~pool["content_hash"].is_in(earlier.implode()).to_numpy())

    def fingerprint(self) -> Mapping[str, Any]:
        """What a checkpoint of a warm-started run must agree on besides the pool and the settings."""
        earlier = sorted(self.earlier_pool) if self.earlier_pool is not None else None
        return {"warm": settings_hash({"ids": self.ids, "hashes": self.content_hashes, "pool": earlier}, 16)}


def write_provenance(path: str | os.PathLike[str], provenance: pl.DataFrame, pool: pl.DataFrame) -> Path:
    """Store a selection's provenance (with each sample's ``content_hash``) and the content hashes of ``pool``, so
    that a later selection can start warm from it; atomically."""
    import pyarrow.parquet as pq

    table = provenance.to_arrow()
    hashes = "".join(pool["content_hash"].to_list()).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), POOL_HASHES_KEY: hashes})
    return write_atomically(Path(path), lambda tmp: pq.write_table(table, tmp))
