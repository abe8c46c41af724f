"""Credentials come from environment variables only, and never reach metadata, logs or stored files."""

import os
import secrets
import sys
from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.credentials import inline_credential, refuse_inline_credentials
from entropy_assets.dagster import EntropyStorage, SelectionPipelineComponent, TrainingSettings, selection_pipeline_defs
from entropy_assets.storage import Storage

from .test_pipeline import POOL, RAW, SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, unguessable token in HF_TOKEN (and offline Hub libraries, so that nothing waits on the network)."""
    token = "hf_" + secrets.token_hex(17)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return token


def files_holding(text: str, *folders: Path) -> list[Path]:
    """Every file under ``folders`` whose bytes contain ``text`` (sqlite databases and logs included)."""
    needle = text.encode("utf-8")
    return [
        path
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://user:s3cr3t-pass@example.org/data.jsonl", "a password in the URL"),
        ("s3://AKIAEXAMPLE:wJalrXUtnFEMIK7MDENG@bucket/prefix", "a password in the URL"),
        ("https://example.org/data.jsonl?token=abc123", "a credential in the URL's query"),
        ("https://acct.blob.core.windows.net/c/data.jsonl?sv=2024&sig=abcdef", "a credential in the URL's query"),
        ("hf_" + "Ab1" * 12, "a Hugging Face access token"),
    ],
)
def test_credentials_in_settings_are_found_and_never_repeated(value: str, kind: str) -> None:
    assert inline_credential(value) == kind
    with pytest.raises(ValueError, match="environment variables") as error:
        refuse_inline_credentials({"paths": ["data", value]}, "pipeline 't'")
    assert "paths[1]" in str(error.value) and kind in str(error.value)
    secret_part = value.rsplit("=", 1)[-1] if "=" in value else value.split("@")[0].rsplit(":", 1)[-1]
    assert secret_part not in str(error.value)


@pytest.mark.parametrize(
    "value",
    ["data/sample", "/work/shared/data/raw/alpaca.json", "s3://bucket/prefix", "https://example.org/a.jsonl?page=2"],
)
def test_ordinary_paths_are_not_credentials(value: str) -> None:
    assert inline_credential(value) is None


def test_the_value_of_a_secret_variable_is_refused_wherever_it_is_pasted(hub_token: str) -> None:
    training = {"backend": "pipes", "command": ["python", "train.py", f"--hub-token={hub_token}"]}
    with pytest.raises(ValueError, match=r"training\.command\[2\] holds a Hugging Face access token") as error:
        refuse_inline_credentials({"training": training}, "pipeline 't'")
    assert hub_token not in str(error.value)
    plain = "x" * 12  # a secret of any shape is found by its value
    os.environ["AWS_SECRET_ACCESS_KEY"] = plain
    try:
        assert inline_credential(f"--key {plain}") == "the value of the environment variable AWS_SECRET_ACCESS_KEY"
    finally:
        del os.environ["AWS_SECRET_ACCESS_KEY"]


def test_the_component_refuses_a_credential_before_building_anything(tmp_path: Path) -> None:
    url = "https://reader:pa55word@example.org/pool.jsonl"
    with pytest.raises(ValueError, match="setting paths\\[0\\] holds a password in the URL") as error:
        SelectionPipelineComponent(name="t", paths=[url])
    assert "pa55word" not in str(error.value)
    with pytest.raises(ValueError, match="setting paths\\[0\\] holds a password in the URL") as error:
        SelectionPipelineComponent.resolve_from_yaml(f"name: t\npaths: [{url}]\n")  # as dg loads defs.yaml
    assert "pa55word" not in str(error.value)


def test_a_storage_url_with_a_password_is_refused_without_showing_it(data_dir: Path) -> None:
    storage = EntropyStorage(base_path="s3://AKIAEXAMPLE:wJalrXUtnFEMIK7MDENG@bucket/prefix")
    with pytest.raises(ValueError, match="base_path holds a password in the URL") as error:
        storage.storage()  # what every asset writes through
    assert "wJalrXUtnFEMIK7MDENG" not in str(error.value)
    with pytest.raises(ValueError, match="base_path holds a password in the URL") as error:
        Storage(storage.base_path)
    assert "wJalrXUtnFEMIK7MDENG" not in str(error.value)
    with pytest.raises(ValueError, match="base_path holds a password in the URL"):  # already when defined
        selection_pipeline_defs(settings(data_dir), storage=storage)


def test_the_hub_token_reaches_the_trainer_but_no_metadata_log_or_file(
    data_dir: Path, tmp_path: Path, hub_token: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The whole graph with an external trainer that reads HF_TOKEN, plus a Hub dataset that fails to load with
    the token set: the token is in none of Dagster's files (event log, run storage, compute logs), the outputs,
    nor what the processes printed."""
    command = [sys.executable, str(REPO / "tests" / "data" / "credential_reading_trainer.py")]
    training = TrainingSettings(backend="pipes", command=command, score="token_seen", eval_samples=50)
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        graph = Graph(settings(data_dir, training=training), store, instance)
        graph.refresh()
        graph.run([SUBSET], "zip")
        result = graph.run([TRAINING], "zip")
        assert graph.metadata(result, TRAINING)["performance"] == 1.0  # the trainer did get the token

        hub = Graph(settings(data_dir, paths=[str(data_dir), "someorg/private-dataset"]), store, instance)
        hub.run([RAW])
        failed = hub.run([POOL], raise_on_error=False)
        error = str(failed.get_step_failure_events()[0].step_failure_data.error)
        assert "someorg/private-dataset" in error  # the failure was recorded, with its cause
    printed = capfd.readouterr()
    assert hub_token not in printed.out + printed.err
    assert files_holding(hub_token, home, store) == []
    assert files_holding("someorg/private-dataset", home)  # the search does look inside the event log


def test_the_python_factory_refuses_a_credential_in_training_settings(data_dir: Path, hub_token: str) -> None:
    command = ["python", "train.py", "--token", hub_token]
    with pytest.raises(ValueError, match=r"pipeline 't': setting training\.command\[3\]") as error:
        settings(data_dir, training=TrainingSettings(backend="pipes", command=command))
    assert hub_token not in str(error.value)
