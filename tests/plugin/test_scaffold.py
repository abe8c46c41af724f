"""``dg scaffold defs entropy_assets.dagster.SelectionPipelineComponent NAME`` writes a ``defs.yaml`` that ``dg check
defs`` accepts, in a fresh dg project, for a pipeline named after its folder or given its settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from entropy_assets.dagster import SelectionPipelineComponent
from entropy_assets.dagster.component import _pipeline_name

COMPONENT = "entropy_assets.dagster.SelectionPipelineComponent"
DEFINITIONS = """from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def dg(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dg`` of this environment in ``project``."""
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    command = [str(Path(bin_dir) / "dg"), *args]
    return subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True, timeout=300)


def test_scaffolded_pipelines_pass_dg_check(tmp_path: Path, raw_dir: Path) -> None:
    project = tmp_path / "project"
    (project / "demo" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.0.1"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "demo"\n'
    )
    (project / "demo" / "__init__.py").touch()
    (project / "demo" / "defs" / "__init__.py").touch()
    (project / "demo" / "definitions.py").write_text(DEFINITIONS)

    plain = dg(project, "scaffold", "defs", COMPONENT, "my-pipeline")
    assert plain.returncode == 0, plain.stderr[-2000:]
    alpaca = str(raw_dir / "alpaca52k_en_part18_51009-52002.json")
    params = {"paths": [alpaca], "budgets": [500, 1000], "training": {"backend": "builtin", "steps": 20}}
    given = dg(project, "scaffold", "defs", COMPONENT, "alpaca", "--json-params", json.dumps(params))
    assert given.returncode == 0, given.stderr[-2000:]

    text = (project / "demo" / "defs" / "my-pipeline" / "defs.yaml").read_text()
    document = yaml.safe_load(text)
    assert document["type"] == COMPONENT
    assert document["attributes"] == {
        "name": "my_pipeline",
        "paths": ["data/my_pipeline"],
        "storage_path": ".entropy_storage",
    }
    assert "  # methods: [zip, random, ratio, longest, dedup]" in text and "  # budgets: [1000]" in text
    text = (project / "demo" / "defs" / "alpaca" / "defs.yaml").read_text()
    assert yaml.safe_load(text)["attributes"] == {"name": "alpaca", "storage_path": ".entropy_storage", **params}
    assert "# budgets" not in text and "# training" not in text and "  # k1: 10000" in text

    checked = dg(project, "check", "defs")
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_the_yaml_schema_documents_every_setting() -> None:
    """What ``dg`` shows and checks a ``defs.yaml`` against: every field, defaults and nested settings included."""
    schema = SelectionPipelineComponent.model().model_json_schema()
    undocumented = [name for name, field in schema["properties"].items() if not field.get("description")]
    assert undocumented == []
    assert schema["properties"]["k1"]["default"] == 10000
    training = schema["$defs"]["TrainingSettings"]["properties"]
    assert training["backend"]["enum"] == ["builtin", "transformers", "pipes", "file"]
    law = schema["$defs"]["LawSettings"]["properties"]
    assert all(field.get("description") for field in [*training.values(), *law.values()])


def test_a_folder_name_becomes_a_pipeline_name() -> None:
    assert _pipeline_name("my-pipeline") == "my_pipeline"
    assert _pipeline_name("2024 data") == "pipeline_2024_data"
    assert _pipeline_name("sample") == "sample"
