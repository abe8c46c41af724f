"""The same inputs make the same metadata: the bundled sample's graph, materialized from this checkout, records what a
snapshot taken before a change recorded (``scripts/metadata_snapshot.py``), but for place and time.

Materializing the sample takes minutes, so the comparison runs only when asked, with the snapshot to compare with:

    python scripts/metadata_snapshot.py --dagster-home <home of a run of main> > /tmp/before.json
    ENTROPY_ASSETS_SNAPSHOT_BEFORE=/tmp/before.json pytest -n 0 tests/test_metadata_snapshot.py

The comparison's own rules are tested always (milliseconds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BEFORE = os.environ.get("ENTROPY_ASSETS_SNAPSHOT_BEFORE")


def snapshot_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metadata_snapshot", ROOT / "scripts" / "metadata_snapshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_comparison_ignores_place_and_time_but_not_a_changed_value() -> None:
    differences = snapshot_script().differences
    before = {
        "sample/selected_subset[zip]": {
            "path": ["PathMetadataValue", "/a/store/sample/selected_subset/zip_300/1.parquet"],
            "file": ["TextMetadataValue", "sample/training_run/zip_300/v.0a1b2c3d.json"],
            "seconds": ["FloatMetadataValue", 1.5],
            "size": ["IntMetadataValue", 300],
            "drift": ["FloatMetadataValue", float("nan")],
        }
    }
    moved = json.loads(json.dumps(before))
    entry = moved["sample/selected_subset[zip]"]
    entry["path"][1] = "/b/store/sample/selected_subset/zip_300/1.parquet"
    entry["file"][1] = "sample/training_run/zip_300/v.9f8e7d6c.json"  # another run's id
    entry["seconds"][1] = 9.0
    assert differences(before, moved) == []
    entry["size"][1] = 299
    assert differences(before, moved) == ["sample/selected_subset[zip] size: '300' -> '299'"]
    del entry["drift"]
    assert "keys" in differences(before, moved)[0]


@pytest.mark.skipif(BEFORE is None, reason="set ENTROPY_ASSETS_SNAPSHOT_BEFORE to a snapshot to compare with")
def test_the_sample_graph_records_the_metadata_of_the_snapshot_before(tmp_path: Path) -> None:
    """The graph runs in a fresh copy of the project (the component resolves its data and storage paths against the
    project's root: a copy has its own, empty storage) with this checkout's package, as the snapshot before ran on a
    fresh clone: every latest materialization, observation and check evaluation must match it."""
    assert BEFORE is not None
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    project = tmp_path / "dagster_project"
    shutil.copytree(ROOT / "dagster_project", project, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    environment = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    environment.pop("ENTROPY_ASSETS_EXECUTOR", None)
    run = [sys.executable, "-m", "dagster_project.materialize_all"]
    done = subprocess.run(run, cwd=tmp_path, env=environment, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    after = snapshot_script().snapshot(str(home))
    before = json.loads(Path(BEFORE).read_text(encoding="utf-8"))
    assert snapshot_script().differences(before, json.loads(json.dumps(after, default=str))) == []
