"""The package a user installs: the wheel built from this checkout holds the plugin alone, and from a fresh virtual
environment outside the repository it runs a pipeline on a folder of real records, as docs/getting-started.md shows.

The fresh environment gets the wheel's own copy of entropy_assets; its dependencies come from this environment's
site-packages through a ``.pth`` line (installing them from the registry would take minutes). Python processes the
``.pth`` files of site directories only, so this environment's editable finder is not active there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDS = "alpaca52k_en_part02_03252-06382.json"
SCRIPT = '''
import json

import dagster as dg

import entropy_assets
from entropy_assets.dagster import SelectionPipeline, TrainingSettings, selection_pipeline_defs

TINY = {"context": 64, "d_model": 32, "layers": 1, "heads": 2, "batch_size": 8}
defs = selection_pipeline_defs(
    SelectionPipeline(
        name="mine",
        paths=["data"],
        methods=("zip", "random"),
        budgets=(100,),
        k1=200,
        k2=40,
        k3=20,
        training=TrainingSettings(steps=10, eval_samples=50, builtin=TINY),
    )
)


def materialize(instance, names, partition=None):
    """The figures of each asset materialized by one run of ``names``."""
    result = dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=[dg.AssetKey(["mine", name]) for name in names],
        partition_key=partition,
    )
    return {
        event.asset_key.path[-1]: {
            key: value.value
            for key, value in event.materialization.metadata.items()
            if isinstance(value.value, (int, float, str))
        }
        for event in result.get_asset_materialization_events()
    }


if __name__ == "__main__":
    with dg.DagsterInstance.get() as instance:
        found = materialize(instance, ["pool", "compression_scores"])
        found.update(materialize(instance, ["selected_subset", "training_run"], partition="zip"))
    shown = {"module": entropy_assets.__file__, "version": entropy_assets.__version__, "metadata": found}
    print(json.dumps(shown, allow_nan=True))
'''


def run(command: list[str], cwd: Path, **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, **options)  # type: ignore[call-overload]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the checkout's files (tracked, or new and not ignored): a stale build/ folder
    of the checkout cannot leak into it."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the repository's git checkout")
    source = tmp_path_factory.mktemp("source")
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."], source)
    (built,) = dist.glob("entropy_assets-*.whl")
    return built


@pytest.mark.wheel
def test_the_wheel_holds_the_plugin_its_typing_marker_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"entropy_assets", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "entropy_assets/py.typed" in names and "entropy_assets/dagster/component.py" in names
    assert not [name for name in names if "dagster_project" in name or "/tests/" in name]


@pytest.mark.wheel
def test_a_fresh_environment_runs_a_pipeline_from_the_wheel(wheel: Path, raw_dir: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run([str(python), "-c", purelib], tmp_path).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], tmp_path)

    project = tmp_path / "mine"  # a user's folder: a definitions script and 400 real records
    (project / "data").mkdir(parents=True)
    records = json.loads((raw_dir / RECORDS).read_text(encoding="utf-8"))[:400]
    (project / "data" / "alpaca.json").write_text(json.dumps(records), encoding="utf-8")
    (project / "materialize.py").write_text(SCRIPT, encoding="utf-8")
    environment = {
        name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV", "DAGSTER_HOME")
    }
    environment["DAGSTER_HOME"] = str(project / ".dagster_home")
    (project / ".dagster_home").mkdir()

    sample = [str(python), "-c", "import dagster_project"]
    missing = subprocess.run(sample, cwd=project, env=environment, capture_output=True, text=True, timeout=60)
    assert "No module named 'dagster_project'" in missing.stderr
    result = run([str(python), "materialize.py"], project, env=environment)

    shown = json.loads(result.stdout)
    assert Path(shown["module"]).is_relative_to(venv), shown["module"]
    assert shown["version"] == wheel.name.split("-")[1]
    metadata = shown["metadata"]
    assert metadata["pool"]["records_kept"] == 400
    assert metadata["selected_subset"]["size"] == 100
    assert metadata["training_run"]["steps"] == 10 and metadata["training_run"]["first_epoch_loss"] > 0
    stored = project / "entropy_assets_storage" / "mine"
    assert {path.name for path in stored.iterdir()} >= {"pool", "compression_scores", "selected_subset", "training_run"}
    assert "BetaWarning" not in result.stderr and "PreviewWarning" not in result.stderr, result.stderr[-3000:]
