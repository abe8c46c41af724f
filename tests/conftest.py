"""Shared fixtures: the real data files in ``../shared/data/raw`` and the small fixtures in ``tests/data``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


@pytest.fixture
def raw_copy(raw_dir: Path, tmp_path: Path) -> Callable[..., Path]:
    """Copies named files of the raw data into a new folder of the test's own (``data`` unless named), which the
    test may change; returns the folder."""

    def copy(names: Sequence[str], folder: str = "data") -> Path:
        target = tmp_path / folder
        target.mkdir()
        for name in names:
            shutil.copyfile(raw_dir / name, target / name)
        return target

    return copy


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """Small fixtures cut from the permissively licensed raw files (see tests/data/README.md)."""
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def tiny_model(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer trained on real text and a one-layer GPT-2, saved as a local model folder."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from entropy_assets.sources import load_pool

    texts = load_pool(raw_dir / "alpaca52k_en_part02_03252-06382.json").frame["text"].to_list()[:300]

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"]))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2)
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    import torch

    torch.manual_seed(0)  # the random initialization, so that the tests see the same model every run
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sigkill_when(process: subprocess.Popen[Any], ready: Callable[[], bool], *, within: float, what: str) -> None:
    """Poll ``ready`` until it holds, then SIGKILL ``process`` and reap it. Fails if the process ends first or if
    ``within`` seconds pass; the process never outlives the call."""
    deadline = time.monotonic() + within
    try:
        while not ready():
            assert process.poll() is None, f"the child ended before {what}"
            assert time.monotonic() < deadline, f"no {what} within {within:.0f} s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def kill_when() -> Callable[..., None]:
    """``sigkill_when``, for tests that kill a child process at a chosen point of its work."""
    return sigkill_when
