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


def run_session(folder: Path, test_body: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of one test (``test_body``, the lines of its function) under this suite's conftest, in a
    process of its own; its outcome."""
    shutil.copy(Path(__file__).resolve().parent / "conftest.py", folder / "conftest.py")
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_session.py").write_text(f"import subprocess\n\n\ndef test_it():\n    {test_body}\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_process_orphaned_by_a_test_fails_the_session_by_name_and_is_ended(tmp_path: Path) -> None:
    """A test whose child leaves a grandchild running and ends first (as a killed step leaves its ``tail -F``): the
    grandchild's parent is gone, yet the session's end still finds it, names its command and ends it."""
    name = f"leftover-{uuid.uuid4().hex[:8]}"
    result = run_session(tmp_path, f"subprocess.run(['bash', '-c', 'exec -a {name} sleep 300 & exit 0'], check=True)")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "1 process(es) started by the tests were still running at the session's end" in result.stdout
    assert f"{name} 300" in result.stdout
    assert _running(name) == []


def test_a_session_that_ends_its_processes_passes(tmp_path: Path) -> None:
    result = run_session(tmp_path, "subprocess.run(['bash', '-c', 'sleep 0.1 & wait'], check=True)")
    assert result.returncode == 0, result.stdout + result.stderr
