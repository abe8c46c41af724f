"""Fixtures shared by the plugin tests."""

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def data_dir(raw_copy: Callable[..., Path]) -> Path:
    """Two real files: 500 ShareGPT chats and 300 C4 documents."""
    return raw_copy(["fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"])
