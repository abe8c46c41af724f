"""Fixtures shared by the plugin tests."""

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def data_dir(raw_dir: Path, tmp_path: Path) -> Path:
    """Two real files: 500 ShareGPT chats and 300 C4 documents."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(raw_dir / "fastchat_dummy_conversation.json", folder)
    shutil.copy(raw_dir / "pretrain_c4_demo.jsonl", folder)
    return folder
