"""Shared fixtures: the real data files in ``../shared/data/raw`` and the small fixtures in ``tests/data``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_DIR = REPO_ROOT.parent / "shared" / "data" / "raw"
FIXTURE_DIR = Path(__file__).resolve().parent / "data"


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
LEFTOVER_GRACE_S = 5.0
"""How long the session's end waits for processes that are already on their way out (a cluster's workers)."""
STANDARD_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
"""The standard library's helper processes, which live as long as the process that started them, by design."""


def _descendants(pid: int) -> dict[int, str] | None:
    """The living (not zombie) descendants of ``pid`` with their command lines; None where processes cannot be
    listed (no psutil and no /proc)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        found = {}
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    found[child.pid] = " ".join(child.cmdline())
            except psutil.Error:  # ended meanwhile
                continue
        return found
    if not os.path.isdir("/proc/self"):
        return None
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]  # the command name in parentheses may hold spaces
            if state != "Z":
                parents[int(entry)] = int(ppid)
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        for child in frontier:
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
    return found


def _leftovers(pid: int, before: set[int]) -> dict[int, str]:
    found = _descendants(pid) or {}
    return {
        child: command
        for child, command in found.items()
        if child not in before and not any(helper in command for helper in STANDARD_HELPERS)
    }


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_session() -> Iterator[None]:
    """Fails the session if a process that its tests started (a dask worker, a ``tail -F`` of Dagster's compute-log
    capture, a killed run's child) is still running at its end, naming each; then ends them.

    This process becomes the child subreaper of what it starts (Linux), so that a process whose parent ended first
    stays among its descendants instead of moving to init, where no listing of descendants would find it. With
    pytest-xdist, each worker checks what it started."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me = os.getpid()
    listed = _descendants(me)
    if listed is None:
        yield
        return
    before = set(listed)
    yield
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (left := _leftovers(me, before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for child in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    if left:
        lines = "\n".join(f"  pid {child}: {command[:300]}" for child, command in sorted(left.items()))
        pytest.fail(f"{len(left)} process(es) started by the tests were still running at the session's end:\n{lines}")


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
