"""The suite's own check that no process it started outlives it (``no_process_outlives_the_session`` in conftest)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="orphans stay descendants through a Linux subreaper")


def _running(name: str) -> list[int]:
    """Living processes whose command line starts with ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(name.encode()):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_process_orphaned_by_a_test_fails_the_session_by_name_and_is_ended(tmp_path: Path) -> None:
    """A test whose child leaves a grandchild running and ends first (as a killed step leaves its ``tail -F``): the
    grandchild's parent is gone, yet the session's end still finds it, names its command and ends it."""
    name = f"leftover-{uuid.uuid4().hex[:8]}"
    shutil.copy(Path(__file__).resolve().parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_orphan.py").write_text(
        "import subprocess\n\n\n"
        "def test_leaves_a_grandchild_running():\n"
        f"    subprocess.run(['bash', '-c', 'exec -a {name} sleep 300 & exit 0'], check=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "1 process(es) started by the tests were still running at the session's end" in result.stdout
    assert f"{name} 300" in result.stdout
    assert _running(name) == []


def test_a_session_that_ends_its_processes_passes(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).resolve().parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_clean.py").write_text(
        "import subprocess\n\n\n"
        "def test_waits_for_its_child():\n"
        "    subprocess.run(['bash', '-c', 'sleep 0.1 & wait'], check=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
