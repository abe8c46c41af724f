"""The pool built one source at a time: an unchanged file is not parsed again, a changed or new one is, a removed
one's records leave, and the pool, its shard-ordered copy and its shards' fingerprints are exactly what loading
everything afresh gives."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import entropy_assets.stages.pool as pool_stage
from entropy_assets.scoring import read_shard, shard_expr, shard_keys, write_shard_ordered
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
    pool_folder = tmp_path / "store" / "t" / "pool"
    assert sorted(entry.name for entry in pool_folder.iterdir()) == ["part_features", "parts", "shard_pieces"]
    parts = sorted(entry.name for entry in (pool_folder / "parts").iterdir())
    assert len(parts) == 2  # the good files' parts, and the script of each beside it
    assert sorted(entry.name for entry in (pool_folder / "part_features" / "script").iterdir()) == parts
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


def test_each_part_stores_its_shard_pieces_and_the_copy_links_them(data: Path, tmp_path: Path) -> None:
    """A piece per part and shard key, each the part's rows of that shard; the version's copy is a folder per shard
    of hard links to those pieces, in load order, and is marked whole."""
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    pool = build(workspace, data)
    folder = tmp_path / "store" / "t" / "pool"
    parts = [entry.name.split(".", 1)[1] for entry in sorted((folder / pool.version).iterdir())]
    assert len(parts) == 3 and pool.shard_file == f"t/pool/{pool.version}.shards4"
    assert (folder / f"{pool.version}.shards4.done").is_file()
    for shard, key in enumerate(shard_keys(4)):
        linked = sorted((tmp_path / "store" / pool.shard_file / key).iterdir())
        assert [entry.name for entry in linked] == [f"{index:05d}.{part}" for index, part in enumerate(parts)]
        for entry, part in zip(linked, parts, strict=True):
            piece = folder / "shard_pieces" / "4" / key / part
            assert entry.stat().st_ino == piece.stat().st_ino  # linked, not copied
            rows = pl.read_parquet(folder / "parts" / part).filter(
                pl.col("content_hash").str.slice(0, 8).str.to_integer(base=16) % 4 == shard
            )
            assert_frame_equal(
                pl.read_parquet(piece).drop("shard"), rows.select("id", "content_hash", "n_bytes", "text")
            )
    assert sorted(entry.name for entry in (folder / "shard_pieces" / "4").iterdir() if entry.is_file()) == sorted(
        f"{part}.done" for part in parts
    )


def test_the_coordinating_process_reads_no_text_when_workers_store_the_pieces(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the sources parsed by worker processes, the process that builds the pool reads only ids and content
    hashes (for the fingerprints): each part's shard pieces were written by the process that parsed it."""
    monkeypatch.setattr(pool_stage, "PARALLEL_BYTES", 0)
    read: list[list[str] | None] = []
    original = Storage.read_parquet

    def reading(storage: Storage, *parts: str, columns: list[str] | None = None) -> pl.DataFrame:
        read.append(columns)
        return original(storage, *parts, columns=columns)

    monkeypatch.setattr(Storage, "read_parquet", reading)
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    pool = build(workspace, data)
    assert read == [["id", "content_hash"]] * 3
    assert_as_loaded_afresh(workspace, data, pool)


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "workers"])
def test_parts_stored_without_pieces_for_these_shards_get_them_without_parsing(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    """Parts stored by a build of one shard (none), then of 4 shards, then of 8: each time every part gets pieces for
    the new count from the part itself, and the copy and fingerprints are those of a fresh load."""
    if parallel:
        monkeypatch.setattr(pool_stage, "PARALLEL_BYTES", 0)
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    single = build_pool(workspace, [str(data)])
    assert single.shard_file is None and not (tmp_path / "store" / "t" / "pool" / "shard_pieces").exists()
    for shards in (4, 8):
        again = build(workspace, data, shards)
        assert (again.files_parsed, again.version) == (0, single.version)
        assert_as_loaded_afresh(workspace, data, again, shards)
    assert sorted(p.name for p in (tmp_path / "store" / "t" / "pool" / "shard_pieces").iterdir()) == ["4", "8"]


def test_a_build_killed_while_writing_pieces_resumes_without_parsing_again(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed at the sixth piece (the second part's second): the first part's pieces are marked whole, the second
    part is stored with one piece; the next build parses the third source alone, keeps the piece it finds and
    writes the rest."""
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    original = pool_stage.write_shard_piece
    written: list[Path] = []

    def die_at_the_sixth(table: pa.Table, path: Path) -> None:
        if len(written) == 5:
            raise KeyboardInterrupt
        original(table, path)
        written.append(path)  # the temporary file, renamed into place next

    monkeypatch.setattr(pool_stage, "write_shard_piece", die_at_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        build(workspace, data)
    monkeypatch.undo()
    folder = tmp_path / "store" / "t" / "pool"
    stored = sorted(part.name for part in (folder / "parts").iterdir())
    assert len(stored) == 2 and len(list((folder / "shard_pieces" / "4").glob("*.done"))) == 1
    (cut,) = [name for name in stored if not (folder / "shard_pieces" / "4" / f"{name}.done").exists()]
    kept = folder / "shard_pieces" / "4" / "0" / cut
    assert not (folder / "shard_pieces" / "4" / "1" / cut).exists()
    assert kept.exists()
    inode = kept.stat().st_ino

    parsed: list[str] = []
    read = pool_stage.read_part
    monkeypatch.setattr(pool_stage, "read_part", lambda source, load: parsed.append(source.label) or read(source, load))
    resumed = build(workspace, data)
    assert resumed.files_parsed == 1 and len(parsed) == 1 and not any(name in parsed[0] for name in stored)
    assert kept.stat().st_ino == inode  # written once: the whole piece left by the killed build is kept
    assert_as_loaded_afresh(workspace, data, resumed)
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]


def test_two_builds_of_the_same_pool_at_once_make_one_complete_copy(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds side by side, held so that both write their first pieces at the same moment: both succeed with the
    same pool, and the store holds one whole copy (every piece once, no temporary file left)."""
    original = pool_stage.write_shard_piece
    together = threading.Barrier(2, timeout=60)
    first: set[int] = set()

    def in_step(table: pa.Table, path: Path) -> None:
        if threading.get_ident() not in first:
            first.add(threading.get_ident())
            together.wait()
        original(table, path)

    monkeypatch.setattr(pool_stage, "write_shard_piece", in_step)
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    with ThreadPoolExecutor(2) as builds:
        results = list(builds.map(lambda _: build(workspace, data), range(2)))
    assert len(first) == 2  # both builds wrote pieces; which parsed what depends on who came first
    made = [(r.version, r.file, r.shard_file, r.shard_fingerprints, r.records_kept) for r in results]
    assert made[0] == made[1]
    assert_as_loaded_afresh(workspace, data, results[0])
    folder = tmp_path / "store" / "t" / "pool"
    for key in shard_keys(4):
        assert len(list((tmp_path / "store" / str(results[0].shard_file) / key).iterdir())) == 3
        assert len(list((folder / "shard_pieces" / "4" / key).iterdir())) == 3
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]


def test_shard_rows_read_the_pieces_and_both_layouts_made_before(data: Path, tmp_path: Path) -> None:
    """The same rows of every shard from the copy of this build (a folder of pieces per shard), from a folder of one
    file per shard, and from one shard-ordered file, as pools recorded before hold them."""
    workspace = Workspace("t", Storage(str(tmp_path / "store")))
    pool = build(workspace, data)
    frame = read_pool(workspace.storage.path(pool.file).path)
    folder = tmp_path / "store" / "t" / "pool"
    single = folder / "before.shards4.parquet"
    write_shard_ordered(frame, 4, single)
    (folder / "earlier.shards4").mkdir()
    for shard, key in enumerate(shard_keys(4)):
        write_shard_ordered(frame.filter(shard_expr(4) == shard), 4, folder / "earlier.shards4" / f"{key}.parquet")
    layouts = [
        pool,
        replace(pool, shard_file=f"t/pool/{single.name}"),
        replace(pool, shard_file="t/pool/earlier.shards4"),
    ]
    for shard, key in enumerate(shard_keys(4)):
        read = [shard_rows(workspace.storage, layout, key, 4) for layout in layouts]
        expected = frame.filter(shard_expr(4) == shard).select(read[0].columns)
        assert read[0].height > 0
        for rows in read:
            assert_frame_equal(rows, expected)


def test_a_pool_on_a_remote_store_copies_the_pieces_into_its_shard_folders(data: Path, tmp_path: Path) -> None:
    """On a store without hard links (fsspec's memory filesystem) each shard's folder holds copies of the pieces,
    marked whole, and reads back as the shard's rows."""
    storage = Storage(f"memory://bucket/{tmp_path.name}")
    workspace = Workspace("t", storage)
    pool = build(workspace, data)
    assert pool.shard_file is not None and storage.exists(f"{pool.shard_file}.done")
    expected = load_pool(str(data)).frame
    for shard, key in enumerate(shard_keys(4)):
        assert storage.exists(f"{pool.shard_file}/{key}.complete")
        rows = storage.read_parquet(pool.shard_file, key).drop("shard")
        assert_frame_equal(rows, expected.filter(shard_expr(4) == shard).select(rows.columns))
    assert pool.shard_fingerprints == shard_fingerprints(expected, 4)
