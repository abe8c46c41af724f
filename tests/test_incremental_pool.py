"""The pool built one source at a time: an unchanged file is not parsed again, a changed or new one is, a removed
one's records leave, and the pool, its shard-ordered copy and its shards' fingerprints are exactly what loading
everything afresh gives."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import entropy_assets.stages.pool as pool_stage
from entropy_assets.scoring import read_shard, shard_keys, write_shard_ordered
from entropy_assets.sources import LoadedPool, SourceError, load_pool, read_pool
from entropy_assets.sources.discovery import Source
from entropy_assets.sources.parts import LoadSettings
from entropy_assets.stages import PoolResult, Workspace, build_pool
from entropy_assets.stages.scores import shard_rows
from entropy_assets.storage import Storage
from entropy_assets.versions import shard_fingerprints

FILES = [
    "alpaca52k_en_part18_51009-52002.json",
    "llamafactory_glaive_toolcall_en_demo.json",
    "pretrain_c4_demo.jsonl",
]


@pytest.fixture
def data(raw_copy: Callable[..., Path]) -> Path:
    return raw_copy(FILES)


def build(workspace: Workspace, data: Path, shards: int = 4) -> PoolResult:
    return build_pool(workspace, [str(data)], shards=shards)


def assert_as_loaded_afresh(workspace: Workspace, data: Path, pool: PoolResult, shards: int = 4) -> None:
    """The stored pool, its shard-ordered copy and its fingerprints equal those of a fresh load of ``data``."""
    expected = load_pool(str(data))
    stored = read_pool(workspace.storage.path(pool.file).path)
    assert_frame_equal(stored, expected.frame)
    assert (pool.records_read, pool.records_kept, dict(pool.dropped), dict(pool.formats)) == (
        expected.report.records_read,
        expected.report.records_kept,
        expected.report.dropped,
        expected.report.formats,
    )
    assert pool.shard_fingerprints == shard_fingerprints(expected.frame, shards)
    assert pool.shard_file is not None
    for shard, key in enumerate(shard_keys(shards)):
        ours = shard_rows(workspace.storage, pool, key, shards)
        wanted = expected.frame.filter(
            pl.col("content_hash").str.slice(0, 8).str.to_integer(base=16) % shards == shard
        ).select(ours.columns)
        assert_frame_equal(ours, wanted)


def test_a_change_parses_only_the_files_it_touched(data: Path, tmp_path: Path) -> None:
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    first = build(workspace, data)
    assert (first.files, first.files_parsed, first.records_parsed) == (3, 3, first.records_read)
    assert_as_loaded_afresh(workspace, data, first)

    again = build(workspace, data)  # nothing changed: nothing parsed, the stored pool kept
    assert (again.files_parsed, again.file, again.shard_fingerprints) == (0, first.file, first.shard_fingerprints)

    records = json.loads((data / FILES[1]).read_text(encoding="utf-8"))
    records[3]["conversations"][0]["value"] += " (edited)"
    (data / FILES[1]).write_text(json.dumps(records), encoding="utf-8")
    with open(data / "added.jsonl", "w", encoding="utf-8") as handle:
        for index in range(30):
            handle.write(json.dumps({"text": f"an appended document, number {index}, about compression"}) + "\n")
    changed = build(workspace, data)
    assert (changed.files, changed.files_parsed, changed.records_parsed) == (4, 2, len(records) + 30)
    assert changed.version != first.version
    assert_as_loaded_afresh(workspace, data, changed)
    fingerprints = dict(changed.shard_fingerprints or {})
    assert fingerprints != first.shard_fingerprints
    # the unchanged file's rows are the same bytes on disk, linked into both versions, not copied
    store = tmp_path / "store"
    inodes = [{entry.stat().st_ino for entry in (store / pool.file).iterdir()} for pool in (first, changed)]
    assert len(inodes[0] & inodes[1]) == 2

    (data / FILES[2]).unlink()  # a removed file's records leave the pool
    removed = build(workspace, data)
    assert (removed.files, removed.files_parsed) == (3, 0)
    stored = read_pool(workspace.storage.path(removed.file).path)
    assert not stored.filter(pl.col("source").str.ends_with(FILES[2])).height
    assert_as_loaded_afresh(workspace, data, removed)


def test_a_moved_file_reuses_its_part_under_its_new_name(data: Path, tmp_path: Path) -> None:
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    build(workspace, data)
    (data / "renamed").mkdir()
    (data / FILES[2]).rename(data / "renamed" / "c4.jsonl")
    moved = build(workspace, data)
    assert moved.files_parsed == 0
    assert_as_loaded_afresh(workspace, data, moved)


def test_a_bad_record_names_its_file_and_stores_no_part_of_it(data: Path, tmp_path: Path) -> None:
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    with open(data / FILES[2], "a", encoding="utf-8") as handle:
        handle.write('{"text": "a record cut in the middle\n{"text": "fine"}\n')
    with pytest.raises(SourceError, match=r"pretrain_c4_demo\.jsonl line \d+"):
        build(workspace, data)
    assert [entry.name for entry in (tmp_path / "store" / "t" / "pool").iterdir()] == ["parts"]
    skipping = build_pool(workspace, [str(data)], skip_malformed=True)
    assert skipping.dropped["malformed"] == 1 and skipping.files_parsed == 3


def test_a_killed_build_resumes_from_the_files_it_had_parsed(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    original = pool_stage.read_part
    calls: list[str] = []

    def read_two_then_die(source: Source, load: LoadSettings) -> LoadedPool:
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between two files
        calls.append(source.label)
        return original(source, load)

    monkeypatch.setattr(pool_stage, "read_part", read_two_then_die)
    with pytest.raises(KeyboardInterrupt):
        build(workspace, data)
    monkeypatch.undo()
    resumed = build(workspace, data)
    assert resumed.files_parsed == 1
    assert_as_loaded_afresh(workspace, data, resumed)


def test_the_shard_ordered_copy_of_an_empty_pool_is_readable(data: Path, tmp_path: Path) -> None:
    empty = load_pool(str(data)).frame.head(0)
    write_shard_ordered(empty, 4, tmp_path / "empty.parquet")
    assert read_shard(tmp_path / "empty.parquet", 2, 4).height == 0


def test_sources_parsed_by_a_process_each_make_the_pool_one_process_makes(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``PARALLEL_BYTES`` the sources are parsed by worker processes (here forced, on three real files): the
    same parts, the same pool; a bad record in one of them still names its file and stores no pool."""
    monkeypatch.setattr(pool_stage, "PARALLEL_BYTES", 0)
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    pool = build(workspace, data)
    assert pool.files_parsed == 3
    assert_as_loaded_afresh(workspace, data, pool)
    with open(data / FILES[2], "a", encoding="utf-8") as handle:
        handle.write('{"text": "a record cut in the middle\n')
    with pytest.raises(SourceError, match=r"pretrain_c4_demo\.jsonl line \d+"):
        build(workspace, data)
