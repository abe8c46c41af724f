"""Column mappings end to end, on files cut from the real data in ../shared/data/raw: one mapping given in Python,
YAML or on the command line; per path; a missing mapped field named with its file and record; files that mix
shapes; records written back exactly as read; labels in provenance; and an incremental pool that parses again only
the files whose mapping changed. (Prompt and completion apart for trainers: tests/training/test_examples.py.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from entropy_assets import cli
from entropy_assets.dagster import SelectionPipeline, SelectionPipelineComponent
from entropy_assets.records import ColumnMapping
from entropy_assets.sources import SourceColumns, SourceError, export_suffix, labels_column, load_pool
from entropy_assets.stages import Workspace, build_pool
from entropy_assets.storage import Storage

ALPACA = "alpaca52k_en_part18_51009-52002.json"


def _json(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def alpaca(raw_dir: Path) -> list[dict[str, Any]]:
    return _json(raw_dir / ALPACA)[:120]


@pytest.fixture
def own_names(alpaca: list[dict[str, Any]], tmp_path: Path) -> Path:
    """Alpaca records under names no detection knows: ask, context, reply, with a bookkeeping id."""
    records = [
        {"uid": i, "ask": r["instruction"], "context": r["input"], "reply": r["output"]} for i, r in enumerate(alpaca)
    ]
    return _write_jsonl(tmp_path / "own_names.jsonl", records)


def test_one_mapping_from_python_yaml_and_the_command_line() -> None:
    python = ColumnMapping(prompt="Instruction", response="Output")
    command_line = ColumnMapping.parse("prompt=Instruction,response=Output")
    document = yaml.safe_load(
        "name: wizard\npaths: [data]\ncolumns:\n  prompt: Instruction\n  response: Output\n"
        "columns_by_path:\n  data/chat.jsonl: {messages: dialog, role_tag: speaker, user_tag: client}\n"
    )
    pipeline = SelectionPipeline.model_validate(document)
    assert python == command_line == pipeline.columns
    assert pipeline.columns_by_path["data/chat.jsonl"].speakers() == {"client": "user"}
    component = SelectionPipelineComponent.model_validate(document).settings(Path("/project"))
    assert dict(component.source_columns.by_path) == {
        "/project/data/chat.jsonl": pipeline.columns_by_path["data/chat.jsonl"]
    }
    schema = SelectionPipelineComponent.model().model_json_schema()
    mapping = schema["$defs"]["ColumnMapping"]["properties"]
    assert {"prompt", "response", "messages", "label", "role_tag", "user_tag"} <= set(mapping)
    assert all(field.get("description") for field in mapping.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("question=Q", "question is not a role or tag"),
        ("prompt", "'prompt' is not role=field"),
        ("prompt=A,prompt=B", "prompt is given twice"),
        ("prompt=A,response=A", "field 'A' is mapped to both prompt and response"),
        ("prompt=", "prompt must name a field"),
        ("", "needs at least one of"),
    ],
)
def test_a_bad_mapping_says_which_role_or_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColumnMapping.parse(text)


def test_a_mapping_reads_a_dataset_of_its_own_names_as_its_alpaca_twin(raw_dir: Path, own_names: Path) -> None:
    with pytest.raises(
        SourceError, match=r"no known record format fits the fields \['ask', 'context', 'reply', 'uid'\]"
    ):
        load_pool(own_names)
    mapped = load_pool(own_names, columns=ColumnMapping(prompt="ask", input="context", response="reply"))
    twins = load_pool(raw_dir / ALPACA).frame.head(120)
    assert mapped.report.formats == {"alpaca": 120}
    assert mapped.frame["text"].to_list() == twins["text"].to_list()
    assert mapped.frame["content_hash"].to_list() == twins["content_hash"].to_list()


def test_a_record_without_a_mapped_field_names_the_file_the_record_and_the_field(own_names: Path) -> None:
    lines = own_names.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[3])
    del broken["reply"]
    lines[3] = json.dumps(broken)
    own_names.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = ColumnMapping(prompt="ask", input="context", response="reply")
    with pytest.raises(SourceError, match=r"own_names\.jsonl line 4 \(record 3\): field 'reply' \(mapped to response"):
        load_pool(own_names, columns=mapping)
    skipped = load_pool(own_names, columns=mapping, skip_malformed=True)
    assert (skipped.report.records_kept, skipped.report.dropped["malformed"]) == (119, 1)


def test_a_conversation_with_its_own_keys_and_speaker_names_reads_as_its_sharegpt_twin(
    raw_dir: Path, tmp_path: Path
) -> None:
    chats = _json(raw_dir / "fastchat_dummy_conversation.json")[:100]
    speakers = {"human": "client", "gpt": "agent"}
    renamed = [
        {"dialog": [{"speaker": speakers[t["from"]], "says": t["value"]} for t in chat["conversations"]]}
        for chat in chats
    ]
    path = _write_jsonl(tmp_path / "dialogs.jsonl", renamed)
    mapping = ColumnMapping.parse(
        "messages=dialog,role_tag=speaker,content_tag=says,user_tag=client,assistant_tag=agent"
    )
    mapped = load_pool(path, columns=mapping).frame
    assert (
        mapped["text"].to_list()
        == load_pool(raw_dir / "fastchat_dummy_conversation.json").frame["text"].head(100).to_list()
    )
    with pytest.raises(SourceError, match=r"dialogs\.jsonl line 1 \(record 0\): field 'dialog\[0\]' has no 'speaker2'"):
        load_pool(path, columns=ColumnMapping(messages="dialog", role_tag="speaker2", content_tag="says"))


def test_a_file_may_mix_shapes_and_the_pool_counts_each_format(raw_dir: Path, tmp_path: Path) -> None:
    alpaca = _json(raw_dir / ALPACA)[:6]
    chat = _json(raw_dir / "fastchat_dummy_conversation.json")[0]
    pair = _json(raw_dir / "llamafactory_dpo_en_demo.json")[0]
    mixed = [
        alpaca[0],
        {"prompt": alpaca[1]["instruction"], "completion": alpaca[1]["output"]},
        {"query": alpaca[2]["instruction"], "response": alpaca[2]["output"]},
        {"prompt": alpaca[3]["instruction"], "completion": alpaca[3]["output"], "label": False},
        {"prompt": alpaca[4]["instruction"], "completions": alpaca[4]["output"].split("\n"), "labels": [True]},
        {"question": alpaca[5]["instruction"]},
        chat,
        pair,
        {"text": "A plain document about compression."},
    ]
    loaded = load_pool(_write_jsonl(tmp_path / "mixed.jsonl", mixed))
    assert loaded.report.formats == {
        "alpaca": 2,
        "preference": 1,
        "prompt_completion": 1,
        "prompt_only": 1,
        "sharegpt": 1,
        "stepwise_supervision": 1,
        "text": 1,
        "unpaired_preference": 1,
    }
    forced = load_pool(tmp_path / "mixed.jsonl", fmt="text", skip_malformed=True)
    assert forced.report.formats == {"text": 1} and forced.report.dropped["malformed"] == 8


def test_mappings_per_path_read_each_file_with_its_own(alpaca: list[dict[str, Any]], tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "wizard").mkdir(parents=True)
    _write_jsonl(data / "wizard" / "test.jsonl", [{"Q": r["instruction"], "A": r["output"]} for r in alpaca[:40]])
    _write_jsonl(
        data / "kto.jsonl",
        [{"ask": r["instruction"], "say": r["output"], "ok": i % 2 == 0} for i, r in enumerate(alpaca[40:80])],
    )
    _write_jsonl(data / "plain.jsonl", alpaca[80:120])
    columns = SourceColumns.of(
        by_path={
            str(data / "wizard"): ColumnMapping(prompt="Q", response="A"),
            str(data / "kto.*"): ColumnMapping(prompt="ask", completion="say", label="ok"),
        }
    )
    loaded = load_pool(str(data), columns=columns)
    assert loaded.report.formats == {"alpaca": 80, "unpaired_preference": 40}
    labels = labels_column(loaded.frame, columns).to_list()
    assert labels[:40] == [json.dumps({"label": i % 2 == 0}) for i in range(40)]
    assert labels[40:] == [None] * 80


def test_selected_records_are_written_back_exactly_as_read_with_their_labels(
    capsys: pytest.CaptureFixture[str], alpaca: list[dict[str, Any]], tmp_path: Path
) -> None:
    records = [
        {"Prompt_Text": r["instruction"], "Answer": r["output"], "good": i % 3 != 0, "n": 1.5}
        for i, r in enumerate(alpaca)
    ]
    source = tmp_path / "kto.json"
    source.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    save, provenance = tmp_path / "subset.json", tmp_path / "provenance.parquet"
    command = ["select", "--data_path", str(source), "--save_path", str(save), "--budget", "30", "--k1", "100",
               "--k2", "40", "--k3", "10", "--provenance", str(provenance),
               "--columns", "prompt=Prompt_Text,completion=Answer,label=good"]  # fmt: skip
    assert cli.main(command) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input"]["formats"] == {"unpaired_preference": 120}
    written = json.loads(save.read_text(encoding="utf-8"))
    assert len(written) == 30 and all(record in records for record in written)
    assert all(list(record) == ["Prompt_Text", "Answer", "good", "n"] for record in written)
    chosen = pl.read_parquet(provenance).sort("rank")
    expected = [json.dumps({"label": records[int(i.split(":")[1])]["good"]}) for i in chosen["id"].to_list()]
    assert chosen["labels"].to_list() == expected
    assert cli.main([*command[:-2], "--format", "text"]) == 2
    assert "field 'text' is missing" in capsys.readouterr().err


def test_the_export_takes_the_form_of_the_input_files_when_asked() -> None:
    assert export_suffix(".parquet", ["a.json"]) == ".parquet"
    assert export_suffix("input", ["data/a.json", "data/b.json"]) == ".json"
    assert export_suffix("input", ["data/a.jsonl.gz"]) == ".jsonl.gz"
    assert export_suffix("input", ["data/a.json", "data/b.jsonl"]) == ".jsonl"
    assert export_suffix("input", ["data/wiki.txt"]) == ".jsonl"


def test_a_changed_mapping_parses_again_only_the_files_it_reads(
    raw_copy: Callable[..., Path], alpaca: list[dict[str, Any]], tmp_path: Path
) -> None:
    data = raw_copy(["pretrain_c4_demo.jsonl", "fastchat_dummy_conversation.json"])
    _write_jsonl(
        data / "own.jsonl", [{"sys": "Be brief.", "ask": r["instruction"], "reply": r["output"]} for r in alpaca]
    )
    workspace = Workspace("t", Storage(str(tmp_path / "store")), logging.getLogger("test"))
    mapping = ColumnMapping(prompt="ask", response="reply")
    first = build_pool(workspace, [str(data)], columns=SourceColumns.of(by_path={str(data / "own.jsonl"): mapping}))
    assert (first.files, first.files_parsed, first.formats["alpaca"]) == (3, 3, 120)
    assert first.version != first.raw_data_version
    with_system = SourceColumns.of(by_path={str(data / "own.jsonl"): mapping.model_copy(update={"system": "sys"})})
    second = build_pool(workspace, [str(data)], columns=with_system)
    assert (second.files_parsed, second.records_parsed) == (1, 120)
    assert second.version != first.version and second.raw_data_version == first.raw_data_version
    texts = pl.read_parquet(workspace.storage.path(second.file).path).filter(
        pl.col("source").str.ends_with("own.jsonl")
    )
    assert texts["text"].str.starts_with("system: Be brief.\nuser: ").all()
    again = build_pool(workspace, [str(data)], columns=SourceColumns.of(by_path={str(data / "own.jsonl"): mapping}))
    assert (again.files_parsed, again.version) == (0, first.version)
    (data / "own.jsonl").unlink()
    plain = build_pool(workspace, [str(data)])
    assert plain.version == plain.raw_data_version  # read the default way, a pool is named by its raw data alone
