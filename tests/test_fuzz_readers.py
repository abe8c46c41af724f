"""Fuzzing every reader of input data: hostile files and values end in a ``SourceError``/``RecordError``/
``MetricsError`` naming the file and line or record (or in counted drops with ``skip_malformed``), never in a raw
library exception, a hang or unbounded memory.

Hypothesis runs derandomized and without an example database, so every run tries the same inputs. The module
prints how many inputs each reader was given and how many faults were injected (see ``TRIED``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import entropy_assets.sources as sources
import entropy_assets.sources.builder as builder_module
import entropy_assets.sources.pool as pool_module
import entropy_assets.sources.readers as readers_module
import entropy_assets.versions as versions_module
from entropy_assets.records import FORMATS, RecordError, canonical_text, detect_format, preference_parts, training_text
from entropy_assets.scoring import read_shard, write_shard_ordered
from entropy_assets.sources import (
    MAX_JSON_DEPTH,
    MAX_RECORD_BYTES,
    SourceError,
    load_pool,
    pool_from_records,
    read_pool,
    write_pool,
)
from entropy_assets.training.metrics import MetricsError, load_metrics_file
from entropy_assets.versions import data_version, file_hashes

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TRIED: Counter[str] = Counter()
"""Inputs given to each reader (and faults injected, under ``faults``), printed at the end of the module."""

FIELDS = (
    "text", "content", "role", "instruction", "input", "output", "prompt", "response", "question", "answer",
    "instances", "history", "system", "conversations", "conversation", "messages", "turns", "from", "value",
    "chosen", "rejected", "tools", "tool_calls", "type",
)  # fmt: skip
ROLES = ("human", "gpt", "user", "assistant", "system", "tool")
SUFFIXES = (".jsonl", ".json", ".txt", ".jsonl.gz", ".json.gz", ".parquet")
HOSTILE_BYTES = (b"\xef\xbb\xbf", b"\r\n", b"\\udc80", b"\xff\xfe", b"[" * 300, b"9" * 5000, b"NaN", b"\0", b"\n" * 3)
METRIC_NAMES = ("first_epoch_loss", "eval_loss", "step_losses", "steps", "tokens", "seconds", "scores", "loss_kind")

any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)  # lone surrogates included
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(ROLES)
    | any_text
)
keys = st.sampled_from(FIELDS) | any_text
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
records = st.dictionaries(keys, json_values, max_size=6)


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the counts of inputs tried per reader once the module's tests have run."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TRIED:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nfuzzed inputs per reader: {dict(sorted(TRIED.items()))}")


def _loads_cleanly(path: Path, **kwargs: Any) -> sources.LoadedPool | None:
    """``load_pool`` with the skipping behaviour under test: anything but a SourceError is a bug."""
    TRIED["load_pool"] += 1
    try:
        return load_pool(path, **kwargs)
    except SourceError as exc:
        assert path.name in str(exc), f"the message does not name the file: {exc}"
        return None


def _dropped(pool: sources.LoadedPool) -> int:
    return sum(pool.report.dropped.values())


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


# --- records.py: arbitrary JSON values --------------------------------------------------------------------------


@settings(FUZZ, max_examples=600)
@given(value=json_values | records, fmt=st.sampled_from(FORMATS))
def test_record_functions_raise_only_record_error_on_any_json_value(value: Any, fmt: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: detect_format(value),
        lambda: canonical_text(value, fmt),  # type: ignore[arg-type]
        lambda: training_text(value, fmt),  # type: ignore[arg-type]
        lambda: preference_parts(value),
    ]
    for call in calls:
        TRIED["records"] += 1
        try:
            result = call()
        except RecordError:
            continue
        assert isinstance(result, str | tuple)


@settings(FUZZ, max_examples=300)
@given(batch=st.lists(records | json_values, max_size=6))
def test_pool_from_records_skips_and_counts_every_bad_record(batch: list[Any]) -> None:
    TRIED["pool_from_records"] += 1
    pool = pool_from_records(batch, "memory", skip_malformed=True)
    assert pool.report.records_read == len(batch) == pool.frame.height + _dropped(pool)
    for text in pool.frame["text"]:
        text.encode("utf-8")  # no lone surrogate reaches the pool
    try:
        pool_from_records(batch, "memory")
    except SourceError as exc:
        assert str(exc).startswith("memory record ")


def test_in_memory_records_that_json_cannot_hold_are_malformed() -> None:
    cyclic: dict[str, Any] = {"text": "loop"}
    cyclic["self"] = cyclic
    deep: Any = "bottom"
    for _ in range(100_000):
        deep = [deep]
    batch = [
        cyclic,
        {"text": "deep", "x": deep},
        {"text": "huge", "n": 10**5000},
        {"messages": [{"role": "user", "content": "x", "tool_calls": deep}]},
        {"conversations": [{"from": "human", "value": "x"}], "tools": [10**5000]},
        {"text": "broken \udc80 half", "\ud800": 1},
        {"text": "fine"},
    ]
    TRIED["pool_from_records"] += len(batch)
    pool = pool_from_records(batch, "memory", skip_malformed=True)
    assert pool.report.dropped["malformed"] == 5
    assert pool.frame["text"].to_list() == ["broken \ufffd half", "fine"]
    assert pool.report.invalid_utf8 == 1
    assert json.loads(pool.frame["record"][0]) == {"text": "broken \ufffd half", "\ufffd": 1}
    with pytest.raises(SourceError, match=r"memory record 0: nested deeper than 256 levels"):
        pool_from_records(batch[1:], "memory")
    with pytest.raises(SourceError, match=r"memory record 0: cannot be stored as JSON \(ValueError: Exceeds"):
        pool_from_records(batch[4:], "memory")
    with pytest.raises(RecordError, match=r"field 'messages\[0\]\.tool_calls' cannot be written as JSON \(Recursion"):
        canonical_text(batch[3], "messages")
    with pytest.raises(RecordError, match=r"field 'tools' cannot be written as JSON \(ValueError: Exceeds"):
        canonical_text(batch[4], "sharegpt")


# --- sources: bytes under every suffix --------------------------------------------------------------------------------


def _real_lines(raw_dir: Path) -> list[bytes]:
    lines: list[bytes] = []
    for name in ("fastchat_vicuna_bench_questions.jsonl", "llamafactory_identity.json"):
        data = (raw_dir / name).read_bytes()
        lines.extend(data.split(b"\n")[:40] if name.endswith("jsonl") else [data[:3000]])
    return lines


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One fault: truncate, flip bytes, insert hostile bytes or repeat a slice."""
    kind = rng.randrange(4)
    cut = rng.randrange(len(data) + 1)
    if kind == 0:
        return data[:cut]
    if kind == 1:
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if flipped:
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    if kind == 2:
        hostile = rng.choice(
            [b"\xef\xbb\xbf", b"\r\n", b"\\udc80", b"\xff\xfe", b"[" * 300, b"9" * 5000, b"NaN", b"\0"]
        )
        return data[:cut] + hostile + data[cut:]
    return data[:cut] + data[cut // 2 : cut] + data[cut:]


@settings(FUZZ, max_examples=250)
@given(seed=st.integers(0, 2**32 - 1), suffix=st.sampled_from(SUFFIXES), noise=st.binary(max_size=300))
def test_mutated_real_bytes_under_every_suffix_end_in_source_error_or_counted_drops(
    raw_dir: Path, seed: int, suffix: str, noise: bytes
) -> None:
    rng = random.Random(seed)
    base = b"\n".join(rng.sample(_real_lines(raw_dir), 5)) if rng.random() < 0.8 else noise
    data = _mutate(base, rng)
    TRIED["faults"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), f"fuzz{suffix}", data)
        for skip in (False, True):
            pool = _loads_cleanly(path, skip_malformed=skip)
            if pool is not None:
                assert pool.report.records_read == pool.frame.height + _dropped(pool)
            elif skip and suffix in (".jsonl", ".txt"):
                pytest.fail("a plain line file never fails as a whole when skipping")


def test_truncated_real_files_end_in_source_error_or_counted_drops(raw_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(8)
    for original in sorted(raw_dir.iterdir()):
        data = original.read_bytes()
        zipped = gzip.compress(data, mtime=0)
        for cut in sorted(rng.sample(range(1, len(data)), 3)):
            TRIED["faults"] += 2
            path = tmp_path / f"cut{cut}_{original.name}"
            path.write_bytes(data[:cut])
            pool = _loads_cleanly(path, skip_malformed=True)
            if original.suffix in (".jsonl", ".txt"):
                assert pool is not None
                assert pool.report.records_read == sum(1 for line in data[:cut].split(b"\n") if line.strip())
            gz_path = tmp_path / f"cut{cut}_{original.name}.gz"
            gz_path.write_bytes(zipped[: cut * len(zipped) // len(data)])
            with pytest.raises(SourceError, match=rf"{gz_path.name}.*(cannot read|Compressed file ended)"):
                TRIED["load_pool"] += 1
                load_pool(gz_path, skip_malformed=True)


def test_damaged_parquet_pools_end_in_source_error(raw_dir: Path, tmp_path: Path) -> None:
    pool = load_pool(raw_dir / "llamafactory_glaive_toolcall_en_demo.json").frame
    whole = tmp_path / "whole.parquet"
    write_pool(pool, whole)
    ordered = tmp_path / "ordered.parquet"
    write_shard_ordered(pool, 4, ordered)
    rng = random.Random(3)
    for name, source in (("pool", whole), ("ordered", ordered), ("records", None)):
        if source is None:
            source = tmp_path / "records.parquet"
            pl.DataFrame([json.loads(r) for r in pool["record"]]).write_parquet(source)
        data = source.read_bytes()
        for trial in range(25):
            damaged = tmp_path / f"{name}_{trial}.parquet"
            damaged.write_bytes(_mutate(data, rng) if trial else os.urandom(len(data)))
            TRIED["faults"] += 1
            _loads_cleanly(damaged, skip_malformed=True)
            for reader in (lambda p=damaged: read_pool(p), lambda p=damaged: read_shard(p, 1, 4)):
                TRIED["read_pool/read_shard"] += 1
                try:
                    reader()
                except SourceError as exc:
                    assert damaged.name in str(exc)


# --- sources: explicit hostile inputs ----------------------------------------------------------------------------


def test_jsonl_line_of_100_mb_is_skipped_and_counted_with_bounded_memory(tmp_path: Path) -> None:
    """The child reports its own peak RSS as ``VmHWM``: ``ru_maxrss`` (``RUSAGE_CHILDREN`` too) of a child starts
    from pytest's RSS at fork time on Linux. Measured: about +63 MB over a small file's child (the 64 MiB limit's
    worth of chunks), against about +700 MB when the whole file was read, decoded and split."""
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as out:
        out.write(b'{"text": "first"}\n{"text": "')
        out.write(b"x" * (100 * 1024 * 1024))
        out.write(b'"}\n{"text": "last"}\n')
    small = tmp_path / "small.jsonl"
    small.write_bytes(b'{"text": "first"}\n{"text": "last"}\n')
    code = (
        "import sys; from entropy_assets.sources import load_pool; "
        "r = load_pool(sys.argv[1], skip_malformed=True).report; "
        "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]; "
        "print(r.records_kept, r.dropped['too_large'], hwm)"
    )
    peaks = {}
    for path in (small, big):
        TRIED["load_pool"] += 1
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        kept, too_large, peak_kb = map(int, out.stdout.split())
        peaks[path.name] = peak_kb / 1024
    assert (kept, too_large) == (2, 1)
    assert peaks["big.jsonl"] - peaks["small.jsonl"] < 100, peaks  # less than one copy of the 100 MB line
    with pytest.raises(SourceError, match=r"big\.jsonl line 2 \(record 1\): the record is 104,857,612 bytes, more"):
        load_pool(big)


def test_record_over_max_record_bytes_names_file_line_and_size(tmp_path: Path) -> None:
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_bytes(b'{"text": "short"}\n\n{"text": "' + b"y" * 5000 + b'"}\n{"text": "after"}')
    with pytest.raises(SourceError, match=r"pool\.jsonl line 3 \(record 1\): the record is 5,012 bytes, more than"):
        load_pool(jsonl, max_record_bytes=1000)
    pool = load_pool(jsonl, max_record_bytes=1000, skip_malformed=True)
    assert pool.frame["index"].to_list() == [0, 2]
    assert pool.report.dropped == {"empty": 0, "malformed": 0, "too_large": 1}
    array = tmp_path / "pool.json"
    array.write_text(json.dumps([{"text": "short"}, {"text": "z" * 5000}]))
    with pytest.raises(SourceError, match=r"pool\.json record 1: the record is 5,011 bytes"):
        load_pool(array, max_record_bytes=1000)
    txt = tmp_path / "docs.txt"
    txt.write_text("a\n" + "b" * 5000 + "\nc\n")
    assert load_pool(txt, max_record_bytes=1000, skip_malformed=True).frame["text"].to_list() == ["a", "c"]
    assert MAX_RECORD_BYTES == 64 * 1024 * 1024
    assert load_pool(jsonl).report.records_kept == 3


def test_json_file_over_the_size_limit_is_refused_with_advice_to_use_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers_module, "MAX_JSON_FILE_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"text": "a" * 100}] * 20))
    for target in (path, _write(tmp_path, "big.json.gz", path.read_bytes())):
        with pytest.raises(SourceError, match=rf"{target.name}: larger than 1,000 bytes.*as \.jsonl"):
            load_pool(target, skip_malformed=True)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".jsonl.gz"])
def test_nesting_of_100_000_levels_is_a_source_error_not_a_recursion_error(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path, f"deep{suffix}", b'{"text": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    TRIED["load_pool"] += 1
    with pytest.raises(SourceError, match=rf"deep{suffix}.*nested deeper than {MAX_JSON_DEPTH} levels"):
        load_pool(path)


def test_nesting_just_past_max_depth_is_malformed_and_at_max_is_kept(tmp_path: Path) -> None:
    def record(depth: int) -> str:  # the record object is the first level
        return '{"text": "a\\udc80", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    path = tmp_path / "depth.jsonl"
    path.write_text(f"{record(MAX_JSON_DEPTH)}\n{record(MAX_JSON_DEPTH + 1)}\n{record(900)}\n")
    with pytest.raises(SourceError, match=r"depth\.jsonl line 2: nested deeper than 256"):
        load_pool(path)
    pool = load_pool(path, skip_malformed=True)
    assert pool.report.dropped["malformed"] == 2
    assert pool.report.invalid_utf8 == 1
    assert pool.frame["text"].to_list() == ["a\ufffd"]
    array = tmp_path / "depth.json"
    array.write_text(f"[{record(MAX_JSON_DEPTH)}, {record(MAX_JSON_DEPTH + 1)}]")
    with pytest.raises(SourceError, match=r"depth\.json record 1: nested deeper than 256"):
        load_pool(array)
    assert load_pool(array, skip_malformed=True).frame.height == 1


def test_integer_of_5000_digits_is_malformed_naming_the_line(tmp_path: Path) -> None:
    number = "9" * 5000
    path = tmp_path / "numbers.jsonl"
    path.write_text(f'{{"text": "a"}}\n{{"text": "b", "n": {number}}}\n{{"text": "c", "n": {number[:300]}}}\n')
    with pytest.raises(SourceError, match=r"numbers\.jsonl line 2: a number is too long to read \(Exceeds"):
        load_pool(path)
    pool = load_pool(path, skip_malformed=True)
    assert pool.frame["text"].to_list() == ["a", "c"]
    assert json.loads(pool.frame["record"][1])["n"] == int(number[:300])
    array = tmp_path / "numbers.json"
    array.write_text(f'[{{"text": "a"}},\n{{"n": {number}}}]')
    with pytest.raises(SourceError, match=r"numbers\.json line 2: a number is too long"):
        load_pool(array, skip_malformed=True)


def test_nan_infinity_bom_crlf_and_surrogate_keys_load(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"text": "a", "score": NaN}\r\n{"text": "b", "score": -Infinity}\r\n'
        b'{"text": "c", "\\udc80key": 1}\r\n'
    )
    pool = load_pool(path)
    assert pool.frame["text"].to_list() == ["a", "b", "c"]
    assert pool.report.invalid_utf8 == 1
    assert json.loads(pool.frame["record"][2]) == {"text": "c", "\ufffdkey": 1}
    assert json.loads(pool.frame["record"][0])["score"] is None  # orjson writes NaN as null
    txt = tmp_path / "docs.txt"
    txt.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n\r\n")
    assert load_pool(txt).frame["text"].to_list() == ["one", "two"]
    array = tmp_path / "odd.json"
    array.write_bytes(b'\xef\xbb\xbf[{"text": "a"},\r\n {"text": "b", "n": Infinity}]\r\n')
    assert load_pool(array).frame["text"].to_list() == ["a", "b"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_random_bytes_under_each_suffix_are_a_source_error_or_counted(tmp_path: Path, suffix: str) -> None:
    rng = random.Random(suffix)
    for trial in range(10):
        path = tmp_path / f"random{trial}{suffix}"
        path.write_bytes(rng.randbytes(rng.choice([1, 100, 20_000])))
        TRIED["faults"] += 1
        _loads_cleanly(path, skip_malformed=True)
        _loads_cleanly(path)


def test_corrupt_gzip_names_the_file_and_the_line_reached(raw_dir: Path, tmp_path: Path) -> None:
    zipped = bytearray(gzip.compress((raw_dir / "pretrain_c4_demo.jsonl").read_bytes(), mtime=0))
    zipped[len(zipped) // 2] ^= 0xFF
    path = tmp_path / "c4.jsonl.gz"
    path.write_bytes(bytes(zipped))
    with pytest.raises(SourceError, match=r"c4\.jsonl\.gz line \d+: cannot read further \((CRC check failed|Error -3)"):
        load_pool(path, skip_malformed=True)
    (tmp_path / "empty.jsonl.gz").write_bytes(b"")
    assert load_pool(tmp_path / "empty.jsonl.gz").frame.height == 0


def test_empty_files_of_every_suffix(tmp_path: Path) -> None:
    for suffix in SUFFIXES:
        path = tmp_path / f"empty{suffix}"
        path.write_bytes(b"")
        pool = _loads_cleanly(path)
        if suffix == ".parquet":
            assert pool is None
        else:
            assert pool is not None and pool.frame.height == 0


def test_mixed_formats_in_one_folder_count_each_bad_file_or_record(raw_dir: Path, tmp_path: Path) -> None:
    lines = (raw_dir / "fastchat_mt_bench_questions.jsonl").read_bytes().split(b"\n")[:5]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join([*lines, b"[1]", b"\xff\xfe", b"{"]))
    (tmp_path / "b.txt").write_bytes(b"doc one\n\x00\x01 binary\n")
    (tmp_path / "c.json").write_text(json.dumps([{"text": "x"}, {"conversations": 3}]))
    _write(tmp_path, "d.jsonl.gz", b'{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    pl.DataFrame({"text": ["p1", "p2"]}).write_parquet(tmp_path / "e.parquet")
    pool = load_pool(tmp_path, skip_malformed=True)
    assert pool.report.formats == {"messages": 5, "preference": 1, "text": 5}
    assert pool.report.dropped == {"empty": 0, "malformed": 4, "too_large": 0}
    (tmp_path / "f.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match=r"f\.parquet: not a readable parquet file"):
        load_pool(tmp_path, skip_malformed=True)


def test_file_removed_between_listing_and_reading_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("gone.jsonl", "gone.json", "gone.parquet"):
        path = tmp_path / name
        path.write_text('{"text": "a"}\n')
        listed = pool_module.source_names

        def list_then_remove(found: Any, listed: Any = listed, path: Path = path) -> list[str]:
            path.unlink()
            return listed(found)

        monkeypatch.setattr(pool_module, "source_names", list_then_remove)
        with pytest.raises(SourceError, match=rf"{name}: cannot open \(No such file or directory\)"):
            load_pool(path)
        monkeypatch.undo()


def append_after_the_first_record(monkeypatch: pytest.MonkeyPatch, path: Path, data: bytes) -> None:
    """Make the next load append ``data`` to ``path`` once its first record has been read, as a writer would."""
    read = builder_module.read_record
    calls: list[Any] = []

    def read_and_append(record: Any, *args: Any) -> Any:
        if not calls:
            with open(path, "ab") as out:
                out.write(data)
        calls.append(record)
        return read(record, *args)

    monkeypatch.setattr(builder_module, "read_record", read_and_append)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_an_unfinished_last_record_is_named_as_such(raw_dir: Path, tmp_path: Path, suffix: str) -> None:
    """A file that ends inside a record (a cut download, or a writer not done) says so; a bad line before the end,
    or a last record that is whole without its newline, does not."""
    real = (raw_dir / "pretrain_c4_demo.jsonl").read_bytes()
    unfinished = _write(tmp_path, f"unfinished{suffix}", real + b'{"text": "half of a rec')
    with pytest.raises(SourceError, match=r"line 301: not valid JSON .*; it is the last line, with no newline: was "):
        load_pool(unfinished)
    middle = _write(tmp_path, f"middle{suffix}", b'{"text": "half of a rec\n' + real)
    with pytest.raises(SourceError, match=r"line 1: not valid JSON") as error:
        load_pool(middle)
    assert "last line" not in str(error.value)
    whole = _write(tmp_path, f"whole{suffix}", real + b'{"text": "the last record, whole"}')
    assert load_pool(whole).frame["text"][-1] == "the last record, whole"


def test_file_changed_while_read_is_a_source_error(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.jsonl"
    path.write_bytes((raw_dir / "pretrain_c4_demo.jsonl").read_bytes())
    append_after_the_first_record(monkeypatch, path, b'{"text": "appended"}\n')
    with pytest.raises(SourceError, match=r"growing\.jsonl: changed while it was read \(747,189 bytes, now 747,210\)"):
        load_pool(path)


def test_half_a_line_appended_while_read_is_reported_as_a_change_not_as_bad_json(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer caught mid-append leaves an unterminated last line: the cause to report is the change."""
    path = tmp_path / "appending.jsonl"
    path.write_bytes((raw_dir / "pretrain_c4_demo.jsonl").read_bytes() * 3)  # past the first 1 MiB read
    append_after_the_first_record(monkeypatch, path, b'{"text": "half of a rec')
    with pytest.raises(SourceError, match=r"appending\.jsonl: changed while it was read") as error:
        load_pool(path)
    assert "not valid JSON" in str(error.value.__cause__)


def test_file_removed_between_listing_and_hashing_is_a_source_error(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes((raw_dir / "fastchat_vicuna_bench_questions.jsonl").read_bytes())
    hashes = file_hashes(tmp_path)
    listed = sources.data_files(tmp_path)
    path.unlink()
    monkeypatch.setattr(versions_module, "data_files", lambda paths: listed)
    with pytest.raises(SourceError, match=r"data\.jsonl: cannot be read for its hash \(No such file"):
        file_hashes(tmp_path)
    with pytest.raises(SourceError, match=r"data\.jsonl: vanished after it was hashed"):
        data_version(tmp_path, hashes)


def test_damaged_dataset_dict_json_is_a_source_error(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    for content in ('{"splits": 3}', '{"splits": ["train", 5]}', "[" * 50_000, b"\xff\xfe"):
        TRIED["faults"] += 1
        data = content if isinstance(content, bytes) else content.encode()
        (folder / "dataset_dict.json").write_bytes(data)
        with pytest.raises(SourceError, match=r"dataset_dict\.json: not a valid dataset_dict\.json"):
            load_pool(folder)


# --- scoring.read_shard ------------------------------------------------------------------------------------------


def test_read_shard_of_missing_foreign_or_mistyped_files_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"absent\.parquet \(shard 0 of 2\): cannot be read"):
        read_shard(tmp_path / "absent.parquet", 0, 2)
    foreign = tmp_path / "foreign.parquet"
    pl.DataFrame({"text": ["a"]}).write_parquet(foreign)
    with pytest.raises(SourceError, match=r"foreign\.parquet \(shard 0 of 2\): not a pool file; columns \['id'"):
        read_shard(foreign, 0, 2)
    mistyped = tmp_path / "mistyped.parquet"
    frame = pool_from_records([{"text": "a"}, {"text": "b"}], "memory").frame
    frame.with_columns(n_bytes=pl.col("n_bytes").cast(pl.String)).write_parquet(mistyped)
    with pytest.raises(SourceError, match=r"mistyped\.parquet \(shard 0 of 1\): columns of the wrong type"):
        read_shard(mistyped, 0, 1)
    not_hex = tmp_path / "not_hex.parquet"
    frame.with_columns(content_hash=pl.lit("zzzzzzzzzz")).write_parquet(not_hex)
    with pytest.raises(SourceError, match=r"not_hex\.parquet \(shard 1 of 2\): cannot be read"):
        read_shard(not_hex, 1, 2)
    with pytest.raises(ValueError, match=r"shard must be in 0\.\.1"):
        read_shard(not_hex, 2, 2)


def test_read_shard_of_a_real_pool_with_one_damaged_hash_is_a_source_error(raw_dir: Path, tmp_path: Path) -> None:
    """A byte mutation CI's fuzzing met: one hash with a control character made polars 1.44 panic in its parquet
    decoder (``PanicException``, a ``BaseException``) instead of raising its ``ComputeError``."""
    pool = load_pool(raw_dir / "llamafactory_glaive_toolcall_en_demo.json").frame
    damaged_hash = pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("9b\x0181cf3")).otherwise(pl.col("content_hash"))
    damaged = tmp_path / "damaged_hash.parquet"
    pool.with_columns(content_hash=damaged_hash).write_parquet(damaged)
    for shard in range(4):
        with pytest.raises(SourceError, match=rf"damaged_hash\.parquet \(shard {shard} of 4\): cannot be read"):
            read_shard(damaged, shard, 4)
    intact = tmp_path / "intact.parquet"
    write_pool(pool, intact)
    assert sum(read_shard(intact, shard, 4).height for shard in range(4)) == pool.height


# --- training.metrics.load_metrics_file ------------------------------------------------------------------------

metric_fields = st.fixed_dictionaries(
    {},
    optional={
        name: json_values | st.floats(allow_nan=True) | st.integers(min_value=10**300, max_value=10**400)
        for name in (
            "first_epoch_loss",
            "eval_loss",
            "step_losses",
            "steps",
            "tokens",
            "seconds",
            "scores",
            "loss_kind",
        )
    },
)


@settings(FUZZ, max_examples=300)
@given(data=metric_fields | json_values, cut=st.integers(0, 400), binary=st.booleans())
def test_metrics_file_of_any_content_is_metrics_or_metrics_error(data: Any, cut: int, binary: bool) -> None:
    text = json.dumps(data)
    with tempfile.TemporaryDirectory() as folder:
        for name, content in (
            ("metrics.json", text.encode("utf-8", "surrogatepass")),
            ("metrics.json", text.encode()[:cut]),
            ("metrics.csv", b"loss,eval_loss\n" + text.encode("utf-8", "surrogatepass")[:cut]),
        ):
            path = Path(folder) / name
            path.write_bytes(os.urandom(cut) if binary else content)
            TRIED["load_metrics_file"] += 1
            try:
                metrics = load_metrics_file(path)
            except MetricsError as exc:
                assert name in str(exc)
                continue
            assert math.isfinite(metrics.first_epoch_loss)


def test_metrics_files_with_wrong_types_name_the_file_and_field(tmp_path: Path) -> None:
    cases = {
        '{"first_epoch_loss": 1.0, "scores": [1, 2]}': "field 'scores' must be an object",
        '{"first_epoch_loss": 1.0, "step_losses": "123"}': "field 'step_losses' must be a list",
        '{"first_epoch_loss": 1e400}': "first_epoch_loss must be a finite number",
        '{"first_epoch_loss": ' + "1" * 400 + "}": "int too large to convert to float",
        '{"first_epoch_loss": 1.0, "steps": ' + "9" * 5000 + "}": "not readable JSON",
        '{"first_epoch_loss": 1.0, "x": ' + "[" * 100_000 + "}": "not readable JSON",
    }
    for content, message in cases.items():
        path = tmp_path / "metrics.json"
        path.write_text(content)
        with pytest.raises(MetricsError, match=rf"metrics\.json.*{message}"):
            load_metrics_file(path)
    csv_cases = {
        b"loss\n1.0\n\x00\n": r"data row 2: 'loss' must be a number, got '\\x00'",
        b"step,loss\n1,2.0\n2\n": "data row 2: 'loss' must be a number, got None",
        b"loss\n\xff\xfe\n": "not UTF-8 text",
        b"loss\n" + b"1" * 200_000 + b"\n": "not a readable CSV",
    }
    for data, message in csv_cases.items():
        path = tmp_path / "metrics.csv"
        path.write_bytes(data)
        with pytest.raises(MetricsError, match=rf"metrics\.csv.*{message}"):
            load_metrics_file(path)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfloss\r\n2.0\r\n4.0\r\n")
    assert load_metrics_file(bom).first_epoch_loss == 3.0


def test_a_named_pipe_among_the_data_files_is_refused_instead_of_waiting_forever(raw_dir: Path, tmp_path: Path) -> None:
    shutil.copy(raw_dir / "pretrain_c4_demo.jsonl", tmp_path)
    os.mkfifo(tmp_path / "stream.jsonl")
    for paths in (tmp_path, tmp_path / "stream.jsonl"):
        with pytest.raises(SourceError, match=r"stream\.jsonl: not a regular file \(a named pipe"):
            load_pool(paths)
        with pytest.raises(SourceError, match=r"stream\.jsonl: not a regular file"):
            file_hashes(paths)
