"""Shared fixtures: the real data files in ``../shared/data/raw`` and the small fixtures in ``tests/data``."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_DIR = REPO_ROOT.parent / "shared" / "data" / "raw"
FIXTURE_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """The shared raw data folder beside the repository; tests that need it skip where it is missing."""
    if not RAW_DIR.is_dir():
        pytest.skip(f"real data not found at {RAW_DIR}")
    return RAW_DIR


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """Small fixtures cut from the permissively licensed raw files (see tests/data/README.md)."""
    return FIXTURE_DIR
