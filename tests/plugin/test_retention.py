"""Pruning a pool's stored parts: what was made of a part (its shard pieces, its features) goes with it, and the
folders beside the pool versions are never taken for versions."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from entropy_assets.sources import load_pool
from entropy_assets.stages import Workspace, build_pool
from entropy_assets.stages.retention import PrunePlan, _unlinked_parts, prune
from entropy_assets.stages.scores import shard_rows
from entropy_assets.storage import Storage


def test_pruned_parts_take_their_pieces_and_features_and_the_kept_pool_still_builds(
    data_dir: Path, tmp_path: Path
) -> None:
    """Version 1 (copied at 2 and at 4 shards) is pruned after a change of one file made version 2 (at 4 shards):
    the changed file's old part goes with its pieces (marker first) and features, the pieces at 2 shards go whole,
    and what version 2 holds stays; building version 2 again then parses nothing and reads every shard whole."""
    storage = Storage(str(tmp_path / "store"))
    workspace = Workspace("t", storage)
    first = build_pool(workspace, [str(data_dir)], shards=2)
    assert build_pool(workspace, [str(data_dir)], shards=4).version == first.version
    folder = tmp_path / "store" / "t" / "pool"
    old_parts = {entry.name for entry in (folder / "parts").iterdir()}
    with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "A second data version."}) + "\n")
    second = build_pool(workspace, [str(data_dir)], shards=4)
    (gone,) = old_parts - {entry.name.split(".", 1)[1] for entry in (folder / second.version).iterdir()}
    (features := folder / "part_features" / "lengths").mkdir(parents=True)
    for part in (folder / "parts").iterdir():
        (features / part.name).write_bytes(b"feature")

    nothing = _unlinked_parts(storage, "t", set())
    assert nothing == []  # every part is held; shard_pieces, part_features and the copies are not pool versions
    removed = {
        storage.path(f"t/pool/{entry.name}") for entry in folder.iterdir() if entry.name.startswith(first.version)
    }
    plan = [path.relative_to(storage.path()).as_posix() for path in _unlinked_parts(storage, "t", removed)]
    assert plan == [
        f"t/pool/parts/{gone}",
        f"t/pool/shard_pieces/4/{gone}.done",
        *[f"t/pool/shard_pieces/4/{key}/{gone}" for key in "0123"],
        "t/pool/shard_pieces/2",
        f"t/pool/part_features/lengths/{gone}",
        f"t/pool/part_features/script/{gone}",  # stored by the pool step as it parsed the part
    ]

    prune(PrunePlan((*sorted(removed, key=str), *(storage.path(path) for path in plan)), 1, 0))
    assert sorted(entry.name for entry in folder.iterdir()) == sorted(
        [
            "parts",
            "part_features",
            "shard_pieces",
            second.version,
            f"{second.version}.shards4",
            f"{second.version}.shards4.done",
        ]
    )
    again = build_pool(workspace, [str(data_dir)], shards=4)
    assert (again.files_parsed, again.shard_fingerprints) == (0, second.shard_fingerprints)
    expected = load_pool(str(data_dir)).frame
    rows = pl.concat([shard_rows(storage, again, key, 4) for key in "0123"])
    assert_frame_equal(rows.sort("id"), expected.select(rows.columns).sort("id"))
