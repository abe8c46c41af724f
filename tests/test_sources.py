"""Loading real files into a pool and writing selections back, including the bad-input cases."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import entropy_assets.sources as sources
import entropy_assets.sources.atomic as atomic
from entropy_assets.sources import (
    POOL_SCHEMA,
    LoadReport,
    SourceError,
    load_hf_dataset,
    load_pool,
    pool_from_records,
    read_pool,
    write_pool,
    write_records,
)

ALPACA_18 = "alpaca52k_en_part18_51009-52002.json"


def _originals(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(record) for record in frame["record"]]


def _read_back(path: Path) -> list[dict[str, Any]]:
    if path.name.endswith(".parquet"):
        return pl.read_parquet(path).to_dicts()
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("utf-8")
    if ".jsonl" in path.name:
        return [json.loads(line) for line in text.splitlines()]
    return json.loads(text)


@pytest.mark.parametrize(
    ("file_name", "fmt", "count"),
    [
        (ALPACA_18, "alpaca", 993),
        ("code_alpaca_2k.json", "alpaca", 2017),
        ("dolly15k_sample_templated.jsonl", "alpaca", 151),
        ("self_instruct_seed_tasks.jsonl", "alpaca", 175),
        ("self_instruct_user_oriented_instructions.jsonl", "alpaca", 252),
        ("alpaca_eval_outputs_text_davinci_003.json", "alpaca", 805),
        ("llamafactory_alpaca_zh_demo.json", "alpaca", 1000),
        ("fastchat_dummy_conversation.json", "sharegpt", 500),
        ("llamafactory_glaive_toolcall_en_demo.json", "sharegpt", 300),
        ("llamafactory_dpo_en_demo.json", "preference", 300),
        ("fastchat_mt_bench_questions.jsonl", "messages", 80),
        ("fastchat_vicuna_bench_questions.jsonl", "messages", 80),
        ("pretrain_c4_demo.jsonl", "text", 300),
        ("pretrain_wiki_demo.txt", "text", 30),
    ],
)
def test_each_real_file_loads_every_record_in_its_format(raw_dir: Path, file_name: str, fmt: str, count: int) -> None:
    pool = load_pool(raw_dir / file_name)
    report = pool.report
    assert pool.frame.schema == POOL_SCHEMA
    assert pool.frame.height == count
    assert report.records_read == report.records_kept == count
    assert report.formats == {fmt: count}
    assert report.dropped == {"empty": 0, "malformed": 0, "too_large": 0}
    assert report.invalid_utf8 == 0
    assert report.files == [str(raw_dir / file_name)]
    assert pool.frame["id"].to_list()[:2] == [f"{file_name}:0", f"{file_name}:1"]
    assert pool.frame["index"].to_list() == list(range(count))


def test_pool_columns_hold_text_size_hash_and_the_original_record(raw_dir: Path) -> None:
    path = raw_dir / ALPACA_18
    pool = load_pool(path)
    row = pool.frame.row(379, named=True)
    original = _originals(path)[379]
    assert original["output"] == ""
    assert row["id"] == f"{ALPACA_18}:379"
    assert row["source"] == str(path)
    assert row["format"] == "alpaca"
    assert row["text"] == (
        "user: Generate an example of a bar chart to visually represent the following data\nNumber of cats (2,5,3,1,4)"
    )
    data = row["text"].encode("utf-8")
    assert row["n_bytes"] == len(data)
    assert row["content_hash"] == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert json.loads(row["record"]) == original
    assert row["record"] == json.dumps(original, ensure_ascii=False, separators=(",", ":"))
    assert pool.report.bytes == pool.frame["n_bytes"].sum()


def test_code_alpaca_keeps_both_records_with_empty_outputs(raw_dir: Path) -> None:
    pool = load_pool(raw_dir / "code_alpaca_2k.json")
    assert pool.frame.height == 2017
    no_answer = pool.frame.filter(~pl.col("text").str.contains("\nassistant: ", literal=True))
    assert no_answer["index"].to_list() == [
        i for i, r in enumerate(_originals(raw_dir / "code_alpaca_2k.json")) if r["output"] == ""
    ]
    assert no_answer["text"].str.starts_with("user: ").all()


def test_whole_alpaca_52k_loads_with_its_28_empty_outputs_kept(raw_dir: Path) -> None:
    pool = load_pool(raw_dir / "alpaca52k_en_part*.json")
    frame = pool.frame
    assert len(pool.report.files) == 18
    assert frame.height == pool.report.records_kept == 52002
    assert frame["id"].n_unique() == 52002
    assert frame.filter(~pl.col("text").str.contains("\nassistant: ", literal=True)).height == 28
    assert frame.filter(pl.col("text").str.contains("\n<noinput>\nassistant: ", literal=True)).height > 0


def test_bookkeeping_fields_never_reach_the_text(raw_dir: Path) -> None:
    frame = load_pool(
        [
            raw_dir / "fastchat_dummy_conversation.json",
            raw_dir / "alpaca_eval_outputs_alpaca-7b.json",
            raw_dir / "fastchat_mt_bench_questions.jsonl",
        ]
    ).frame
    text = "\n".join(frame["text"])
    assert "identity_0" not in text
    assert "alpaca-7b" not in text
    assert "helpful_base" not in text
    assert '"question_id"' not in text
    assert frame.filter(pl.col("source").str.ends_with("dummy_conversation.json"))["text"][0].startswith(
        "user: Who are you?\nassistant: I am Vicuna"
    )


def test_mixed_fixture_counts_each_format(fixture_dir: Path) -> None:
    pool = load_pool(fixture_dir / "mixed_formats.jsonl")
    assert pool.frame["format"].to_list() == [
        "sharegpt",
        "sharegpt",
        "preference",
        "alpaca",
        "alpaca",
        "messages",
        "text",
    ]
    assert pool.report.formats == {"alpaca": 2, "messages": 1, "preference": 1, "sharegpt": 2, "text": 1}


def test_forced_format_applies_to_every_record(fixture_dir: Path) -> None:
    with pytest.raises(SourceError, match=r"mixed_formats\.jsonl line 1 \(record 0\): field 'text' is missing"):
        load_pool(fixture_dir / "mixed_formats.jsonl", fmt="text")
    pool = load_pool(fixture_dir / "mixed_formats.jsonl", fmt="text", skip_malformed=True)
    assert pool.frame["index"].to_list() == [6]
    assert pool.report.dropped == {"empty": 0, "malformed": 6, "too_large": 0}


def test_wiki_txt_gives_one_text_record_per_line(raw_dir: Path) -> None:
    path = raw_dir / "pretrain_wiki_demo.txt"
    frame = load_pool(path).frame
    lines = path.read_text(encoding="utf-8").splitlines()
    assert frame["text"].to_list() == lines
    assert frame["text"][0].startswith("Anarchism is a political philosophy")
    assert _records(frame)[0] == {"text": lines[0]}


def test_gzip_json_and_jsonl_load_like_the_plain_files(raw_dir: Path, tmp_path: Path) -> None:
    for name in ("pretrain_c4_demo.jsonl", "fastchat_dummy_conversation.json"):
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress((raw_dir / name).read_bytes()))
        plain = load_pool(raw_dir / name).frame
        zipped = load_pool(tmp_path / f"{name}.gz").frame
        assert zipped["id"][0] == f"{name}.gz:0"
        assert zipped.drop("id", "source").equals(plain.drop("id", "source"))


def test_parquet_of_real_records_loads_nested_fields(raw_dir: Path, tmp_path: Path) -> None:
    originals = _originals(raw_dir / "llamafactory_dpo_en_demo.json")
    pl.DataFrame(originals).write_parquet(tmp_path / "dpo.parquet")
    pool = load_pool(tmp_path / "dpo.parquet")
    assert pool.report.formats == {"preference": 300}
    assert _records(pool.frame) == originals
    assert pool.frame["text"].to_list() == load_pool(raw_dir / "llamafactory_dpo_en_demo.json").frame["text"].to_list()


def test_saved_datasets_load_as_a_dataset_or_a_dataset_dict(raw_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    originals = _originals(raw_dir / "fastchat_dummy_conversation.json")
    dataset = datasets.Dataset.from_list(originals)
    dataset.save_to_disk(str(tmp_path / "chats"))
    datasets.DatasetDict({"train": dataset.select(range(400)), "test": dataset.select(range(400, 500))}).save_to_disk(
        str(tmp_path / "chats_dict")
    )

    single = load_pool(tmp_path / "chats")
    assert single.frame.height == 500
    assert single.frame["id"][0] == "chats:0"
    assert _records(single.frame) == originals

    both = load_pool(tmp_path / "chats_dict")
    assert both.report.files == [
        str(tmp_path / "chats_dict" / "train"),
        str(tmp_path / "chats_dict" / "test"),
    ]
    assert both.frame["id"].to_list()[399:401] == ["chats_dict/train:399", "chats_dict/test:0"]
    assert both.frame["text"].to_list() == single.frame["text"].to_list()

    test_split = load_hf_dataset(str(tmp_path / "chats_dict"), split="test")
    assert test_split.frame["id"].to_list() == both.frame["id"].to_list()[400:]


def test_load_dataset_json_builder_and_its_saved_copy(raw_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    data_file = str(raw_dir / "pretrain_c4_demo.jsonl")
    pool = load_hf_dataset("json", data_files=data_file, cache_dir=str(tmp_path / "cache"))
    assert pool.frame.height == 300
    assert pool.frame["id"][0] == "json/train:0"
    assert pool.report.formats == {"text": 300}
    plain = load_pool(raw_dir / "pretrain_c4_demo.jsonl").frame
    assert pool.frame["content_hash"].to_list() == plain["content_hash"].to_list()

    dataset = datasets.load_dataset("json", data_files=data_file, split="train", cache_dir=str(tmp_path / "cache"))
    dataset.save_to_disk(str(tmp_path / "c4"))
    assert load_pool(tmp_path / "c4").frame["content_hash"].to_list() == plain["content_hash"].to_list()


def test_hub_failures_are_wrapped_with_the_dataset_name(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")

    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SourceError, match=r"tatsu-lab/alpaca: not a local path.*ConnectionError: no route"):
        load_pool("tatsu-lab/alpaca")


def test_directory_loads_supported_files_recursively_in_sorted_order(raw_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deeper").mkdir(parents=True)
    shutil.copy(raw_dir / "fastchat_vicuna_bench_questions.jsonl", tmp_path / "b" / "questions.jsonl")
    shutil.copy(raw_dir / "fastchat_mt_bench_questions.jsonl", tmp_path / "a" / "deeper" / "questions.jsonl")
    shutil.copy(raw_dir / "llamafactory_identity.json", tmp_path / "identity.json")
    (tmp_path / "notes.md").write_text("# not data\n")
    (tmp_path / ".hidden.jsonl").write_text('{"text": "hidden"}\n')

    pool = load_pool(tmp_path)
    assert pool.report.files == [
        str(tmp_path / "a" / "deeper" / "questions.jsonl"),
        str(tmp_path / "b" / "questions.jsonl"),
        str(tmp_path / "identity.json"),
    ]
    assert pool.frame.height == 80 + 80 + 91
    assert pool.frame["id"].n_unique() == pool.frame.height
    assert pool.frame["id"][0] == "deeper/questions.jsonl:0"
    assert pool.frame["id"][80] == "b/questions.jsonl:0"
    assert pool.frame["id"][160] == "identity.json:0"


def test_glob_and_list_inputs_skip_duplicates(raw_dir: Path) -> None:
    pool = load_pool([raw_dir / "fastchat_*.json*", raw_dir / "fastchat_dummy_conversation.json"])
    assert [Path(f).name for f in pool.report.files] == [
        "fastchat_dummy_conversation.json",
        "fastchat_mt_bench_questions.jsonl",
        "fastchat_vicuna_bench_questions.jsonl",
    ]
    assert pool.report.formats == {"messages": 160, "sharegpt": 500}


def test_malformed_json_file_names_the_file_and_line(raw_dir: Path, tmp_path: Path) -> None:
    text = (raw_dir / "alpaca52k_en_part01_00000-03252.json").read_text(encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace('"input": "",\n    "output": "1.Eat', '"input": ""\n    "output": "1.Eat', 1))
    with pytest.raises(SourceError, match=r"broken\.json line 5 column 5: not valid JSON \(Expecting ',' delimiter\)"):
        load_pool(broken)
    with pytest.raises(SourceError, match=r"broken\.json line 5 column 5"):
        load_pool(broken, skip_malformed=True)


def test_bad_jsonl_lines_name_file_and_line_or_are_counted(raw_dir: Path, tmp_path: Path) -> None:
    lines = (raw_dir / "fastchat_vicuna_bench_questions.jsonl").read_text(encoding="utf-8").splitlines()
    lines[11] = lines[11][:40]
    lines[20] = "[1, 2]"
    lines.insert(5, "")
    bad = tmp_path / "pool.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(SourceError, match=r"pool\.jsonl line 13: not valid JSON \(Unterminated string") as excinfo:
        load_pool(bad)
    assert "column" in str(excinfo.value)

    pool = load_pool(bad, skip_malformed=True)
    assert pool.report.dropped == {"empty": 0, "malformed": 2, "too_large": 0}
    assert pool.report.records_read == 80
    assert pool.report.records_kept == 78
    assert 11 not in pool.frame["index"].to_list()
    assert 20 not in pool.frame["index"].to_list()
    assert pool.frame.filter(pl.col("index") == 12)["text"][0] == f"user: {json.loads(lines[13])['turns'][0]}"


def test_record_that_fits_no_format_names_file_line_and_record(tmp_path: Path) -> None:
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"text": "fine"}\n\n{"question_id": 7, "category": "math"}\n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"pool\.jsonl line 3 \(record 1\): no known record format fits"):
        load_pool(bad)
    array = tmp_path / "pool.json"
    array.write_text('[{"text": "fine"}, {"conversations": "hi"}, 3]', encoding="utf-8")
    with pytest.raises(SourceError, match=r"pool\.json record 1: field 'conversations' must be a list"):
        load_pool(array)
    pool = load_pool(array, skip_malformed=True)
    assert pool.report.dropped["malformed"] == 2
    assert pool.frame["text"].to_list() == ["fine"]


def test_whitespace_only_samples_are_dropped_and_counted(raw_dir: Path, tmp_path: Path) -> None:
    records = _originals(raw_dir / "llamafactory_identity.json")[:5]
    records.insert(1, {"instruction": " ", "input": "\n", "output": "\t"})
    records.append({"text": "   "})
    records.append({"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": " \n"}]})
    path = tmp_path / "with_blanks.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    pool = load_pool(path)
    assert pool.report.dropped == {"empty": 3, "malformed": 0, "too_large": 0}
    assert pool.report.records_read == 8
    assert pool.frame["index"].to_list() == [0, 2, 3, 4, 5]
    assert pool.report.formats == {"alpaca": 5}


def test_invalid_utf8_bytes_are_replaced_and_counted(raw_dir: Path, tmp_path: Path) -> None:
    lines = (raw_dir / "pretrain_c4_demo.jsonl").read_bytes().split(b"\n")[:10]
    lines[3] = lines[3].replace(b"the ", b"the \xff\xfe ", 1)
    bad = tmp_path / "c4.jsonl"
    bad.write_bytes(b"\n".join(lines))
    pool = load_pool(bad)
    assert pool.report.invalid_utf8 == 1
    assert pool.frame.height == 10
    assert "\ufffd\ufffd" in pool.frame["text"][3]
    assert "\ufffd" not in pool.frame["text"][2]

    array = tmp_path / "identity.json"
    array.write_bytes((raw_dir / "llamafactory_identity.json").read_bytes().replace(b"{{author}}", b"\xc3(", 1))
    pool = load_pool(array)
    assert pool.report.invalid_utf8 == 1
    assert pool.frame.height == 91


def test_c4_replacement_characters_that_are_valid_utf8_are_not_counted(raw_dir: Path) -> None:
    pool = load_pool(raw_dir / "pretrain_c4_demo.jsonl")
    assert pool.frame["text"].str.contains("\ufffd", literal=True).any()
    assert pool.report.invalid_utf8 == 0


def test_lone_surrogate_escapes_are_replaced_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "surrogates.jsonl"
    path.write_text(
        '{"text": "broken \\udc80 half"}\n{"text": "emoji \\ud83d\\ude00 pair"}\n{"text": "plain"}\n',
        encoding="utf-8",
    )
    pool = load_pool(path)
    assert pool.report.invalid_utf8 == 1
    assert pool.frame["text"].to_list() == ["broken \ufffd half", "emoji \U0001f600 pair", "plain"]


def test_empty_files_give_an_empty_pool_with_the_schema(tmp_path: Path) -> None:
    for name in ("empty.json", "empty.jsonl", "empty.txt"):
        (tmp_path / name).write_text("\n" if name.endswith(".txt") else "")
    (tmp_path / "empty_array.json").write_text("[]")
    pool = load_pool(tmp_path)
    assert pool.frame.height == 0
    assert pool.frame.schema == POOL_SCHEMA
    assert pool.report.records_read == 0
    assert len(pool.report.files) == 4


def test_missing_and_unsupported_paths_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.jsonl: no such file or directory"):
        load_pool(tmp_path / "nope.jsonl")
    with pytest.raises(SourceError, match="no such file or directory"):
        load_pool(tmp_path / "missing_dir")
    with pytest.raises(SourceError, match="no files match"):
        load_pool(str(tmp_path / "*.jsonl"))
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(SourceError, match=r"notes\.csv: unsupported file type"):
        load_pool(tmp_path / "notes.csv")


def test_json_object_holding_one_list_of_records(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": "1.0", "data": [{"text": "a"}, {"text": "b"}]}))
    assert load_pool(path).frame["text"].to_list() == ["a", "b"]
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}]}))
    assert load_pool(single).frame["text"].to_list() == ["user: hi"]


def test_json_lines_saved_as_json_are_read_line_by_line(raw_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "questions.json"
    shutil.copy(raw_dir / "fastchat_mt_bench_questions.jsonl", path)
    assert load_pool(path).frame.height == 80


def test_pool_from_records_names_ids_after_the_source() -> None:
    pool = pool_from_records([{"text": "a"}, {"text": " "}, {"prompt": "p", "response": "r"}], "memory")
    assert pool.frame["id"].to_list() == ["memory:0", "memory:2"]
    assert pool.report.to_dict() == {
        "files": ["memory"],
        "records_read": 3,
        "records_kept": 2,
        "dropped": {"empty": 1, "malformed": 0, "too_large": 0},
        "invalid_utf8": 0,
        "formats": {"alpaca": 1, "text": 1},
        "bytes": 1 + len("user: p\nassistant: r"),
    }
    assert isinstance(pool.report, LoadReport)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".jsonl.gz", ".json.gz", ".parquet"])
@pytest.mark.parametrize(
    "file_name",
    [
        "code_alpaca_2k.json",
        "fastchat_dummy_conversation.json",
        "llamafactory_glaive_toolcall_en_demo.json",
        "llamafactory_dpo_en_demo.json",
        "self_instruct_seed_tasks.jsonl",
        "fastchat_vicuna_bench_questions.jsonl",
        "pretrain_c4_demo.jsonl",
        "llamafactory_alpaca_zh_demo.json",
    ],
)
def test_write_records_round_trips_the_original_records(
    raw_dir: Path, tmp_path: Path, file_name: str, suffix: str
) -> None:
    originals = _originals(raw_dir / file_name)
    frame = load_pool(raw_dir / file_name).frame
    out = write_records(frame, tmp_path / "out" / f"selection{suffix}")
    assert out == tmp_path / "out" / f"selection{suffix}"
    assert _read_back(out) == originals
    assert load_pool(out).frame["text"].to_list() == frame["text"].to_list()


def test_written_selection_keeps_the_chosen_rows_in_order(raw_dir: Path, tmp_path: Path) -> None:
    originals = _originals(raw_dir / ALPACA_18)
    frame = load_pool(raw_dir / ALPACA_18).frame
    chosen = frame.filter(pl.col("index").is_in([900, 3, 379])).sort("index", descending=True)
    out = write_records(chosen, tmp_path / "subset.json")
    assert _read_back(out) == [originals[900], originals[379], originals[3]]
    assert write_records(frame.head(0), tmp_path / "none.json").read_text() == "[\n]\n"
    assert json.loads((tmp_path / "none.json").read_text()) == []


def _old_file(tmp_path: Path) -> Path:
    path = tmp_path / "selection.jsonl"
    path.write_text('{"text": "old selection"}\n', encoding="utf-8")
    return path


def _no_temp_files(directory: Path) -> bool:
    return sorted(p.name for p in directory.iterdir()) == ["selection.jsonl"]


def test_failed_rename_leaves_the_old_file_intact(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _old_file(tmp_path)
    frame = load_pool(fixture_dir / "mixed_formats.jsonl").frame

    def refuse(src: Any, dst: Any) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        write_records(frame, path)
    assert path.read_text(encoding="utf-8") == '{"text": "old selection"}\n'
    assert _no_temp_files(tmp_path)


def test_failure_after_partial_write_leaves_the_old_file_intact(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _old_file(tmp_path)
    frame = load_pool(fixture_dir / "mixed_formats.jsonl").frame
    written: list[int] = []

    def disk_full(fd: int) -> None:
        written.append(os.fstat(fd).st_size)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_records(frame, path)
    assert written and written[0] > 1000
    assert path.read_text(encoding="utf-8") == '{"text": "old selection"}\n'
    assert _no_temp_files(tmp_path)


def test_bad_record_mid_parquet_write_leaves_the_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "selection.parquet"
    pl.DataFrame({"text": ["old"]}).write_parquet(path)
    frame = pool_from_records([{"text": "a"}, {"text": "b"}], "memory").frame
    frame = frame.with_columns(
        pl.when(pl.col("index") == 1).then(pl.lit("{broken")).otherwise("record").alias("record")
    )
    with pytest.raises(json.JSONDecodeError):
        write_records(frame, path)
    assert pl.read_parquet(path)["text"].to_list() == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["selection.parquet"]


def test_parquet_refuses_to_coerce_mixed_types(tmp_path: Path) -> None:
    frame = pool_from_records([{"text": "a", "score": 1}, {"text": "b", "score": "high"}], "memory").frame
    with pytest.raises(SourceError, match=r"cannot be stored as parquet .*; write \.jsonl instead"):
        write_records(frame, tmp_path / "mixed.parquet")
    assert _read_back(write_records(frame, tmp_path / "mixed.jsonl")) == [
        {"text": "a", "score": 1},
        {"text": "b", "score": "high"},
    ]


def test_write_records_rejects_unknown_suffix_and_missing_records(tmp_path: Path) -> None:
    frame = pool_from_records([{"text": "a"}], "memory").frame
    with pytest.raises(SourceError, match="cannot write records as this file type"):
        write_records(frame, tmp_path / "out.csv")
    with pytest.raises(SourceError, match="no 'record' column"):
        write_records(frame.drop("record"), tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_pool_parquet_round_trips_with_the_exact_schema(raw_dir: Path, tmp_path: Path) -> None:
    frame = load_pool(raw_dir / "llamafactory_glaive_toolcall_en_demo.json").frame
    path = write_pool(frame.with_columns(pl.lit(1).alias("extra")), tmp_path / "pools" / "glaive.parquet")
    back = read_pool(path)
    assert back.schema == POOL_SCHEMA
    assert back.equals(frame)
    empty = read_pool(write_pool(frame.head(0), tmp_path / "empty.parquet"))
    assert empty.schema == POOL_SCHEMA
    assert empty.height == 0


def test_read_pool_rejects_a_non_pool_file(tmp_path: Path) -> None:
    pl.DataFrame({"text": ["a"]}).write_parquet(tmp_path / "other.parquet")
    with pytest.raises(SourceError, match=r"not a pool file; columns \['id', 'source'"):
        read_pool(tmp_path / "other.parquet")
    with pytest.raises(SourceError, match="no such pool file"):
        read_pool(tmp_path / "absent.parquet")


def test_a_write_removes_temporaries_that_killed_writers_left_and_keeps_live_ones(tmp_path: Path) -> None:
    target = tmp_path / "pool.parquet"
    stale, live = tmp_path / ".pool.parquet.abc123.tmp", tmp_path / ".pool.parquet.def456.tmp"
    other = tmp_path / ".scores.parquet.abc123.tmp"  # another file's: not this write's business
    for path in (stale, live, other):
        path.write_bytes(b"half a parquet file")
    old = os.stat(stale).st_mtime - sources.STALE_TEMPORARY_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    sources.write_atomically(target, lambda tmp: tmp.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and live.exists() and other.exists()
