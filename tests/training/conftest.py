"""Real Alpaca text shared by the trainer tests."""

from pathlib import Path

import pytest

from entropy_assets.sources import load_pool


@pytest.fixture(scope="session")
def alpaca(raw_dir: Path) -> list[str]:
    """The canonical texts of one real Alpaca chunk (3,130 records)."""
    return load_pool(raw_dir / "alpaca52k_en_part02_03252-06382.json").frame["text"].to_list()


@pytest.fixture(scope="session")
def train_texts(alpaca: list[str]) -> list[str]:
    return alpaca[:40]


@pytest.fixture(scope="session")
def eval_texts(alpaca: list[str]) -> list[str]:
    return alpaca[-40:]
