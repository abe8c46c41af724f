"""Methods that choose from the pool's light columns (``methods.reads_light_columns``) select without reading the
pool's text whole, and make the very subset the whole-pool path makes: the same ids in order, the same exported
records, the same metadata; cold, and warm after records are appended."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import polars as pl
import pytest

from entropy_assets.selection import methods
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.selection.stratified import Stratify
from entropy_assets.stages import (
    PoolResult,
    ScoresResult,
    ScoringSettings,
    SubsetResult,
    SubsetSettings,
    Workspace,
    build_pool,
    holdout_mask,
    score_pool,
    select_subset,
)
from entropy_assets.stages import subset as subset_stage
from entropy_assets.storage import Storage

FILES = ("fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl", "code_alpaca_2k.json")
APPENDED = "llamafactory_alpaca_en_demo.json"
BOUNDED = ("random", "longest", "longest_tokens", "ratio", "dedup", "near_dedup", "ratio_band", "zip")
PLACES = {"path", "file", "export_path", "plot_path", "seconds"}
"""Result fields that name where (or how fast) a subset was written, not what it holds."""


@dataclasses.dataclass
class Data:
    storage: Storage
    data: Path
    pool: PoolResult
    scores: ScoresResult
    scoring: ScoringSettings


@pytest.fixture(scope="module")
def data(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Data:
    """A pool of 500 chats, 300 C4 documents and 2,000 code Alpaca records, and its scores."""
    root = tmp_path_factory.mktemp("bounded")
    folder = root / "data"
    folder.mkdir()
    for name in FILES:
        shutil.copy(raw_dir / name, folder)
    storage = Storage(str(root / "store"))
    workspace = _workspace(storage, "pool")
    pool = build_pool(workspace, [str(folder)])
    scoring = ScoringSettings()
    return Data(storage, folder, pool, score_pool(workspace, pool, scoring, None), scoring)


def _workspace(storage: Storage, name: str) -> Workspace:
    return Workspace(name, storage, logging.getLogger("test"))


def _settings(method: str, stratify: str | None = None) -> SubsetSettings:
    options = SelectionOptions(budget=150, seed=3, stratify=Stratify(stratify) if stratify else None)
    return SubsetSettings(method, 150, method_config(method, options), holdout=40)


def _whole_pool(monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object) -> SubsetResult:
    """``select_subset`` by the whole-pool path, as it selected before light columns were enough."""
    with monkeypatch.context() as patch:
        patch.setattr(methods, "reads_light_columns", lambda *_: False)
        return select_subset(*args, **kwargs)  # type: ignore[arg-type]


def _same(light: SubsetResult, whole: SubsetResult, storage: Storage) -> None:
    assert set(light.to_metadata()) == set(whole.to_metadata())
    for field in dataclasses.fields(SubsetResult):
        if field.name not in PLACES:
            assert getattr(light, field.name) == getattr(whole, field.name), field.name
    assert storage.read_parquet(light.file).equals(storage.read_parquet(whole.file))
    assert Path(light.export_path).read_bytes() == Path(whole.export_path).read_bytes()


@pytest.mark.parametrize(
    ("method", "stratify"),
    [
        *((method, None) for method in BOUNDED),
        *((method, "script") for method in ("random", "longest_tokens", "ratio", "near_dedup")),
        ("dedup", "source"),
    ],
)
def test_a_light_method_selects_what_the_whole_pool_does(
    data: Data, method: str, stratify: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every method but ZIP's, plain and stratified (by script: a feature of the text; by source: a column)."""
    settings = _settings(method, stratify)
    pool_frame = data.storage.read_parquet(data.pool.file)
    scores = data.storage.read_parquet(data.scores.file)
    offered = ~holdout_mask(pool_frame, settings.holdout) & scores["excluded"].is_null()
    assert methods.reads_light_columns(
        settings.config, subset_stage._known_sizes(scores.filter(offered)), int(offered.sum())
    )
    with monkeypatch.context() as patch:  # the pool is never read with its text whole
        read = Storage.read_parquet

        def light_read(storage: Storage, *parts: str, columns: list[str] | None = None) -> pl.DataFrame:
            assert columns is not None or parts != (data.pool.file,), "the whole pool was read"
            return read(storage, *parts, columns=columns)

        patch.setattr(Storage, "read_parquet", light_read)
        light = select_subset(
            _workspace(data.storage, f"light_{method}_{stratify}"), data.pool, data.scores, settings, data.scoring
        )
    whole_ws = _workspace(data.storage, f"whole_{method}_{stratify}")
    whole = _whole_pool(monkeypatch, whole_ws, data.pool, data.scores, settings, data.scoring)
    _same(light, whole, data.storage)
    # the method on the whole pool's text, measuring sizes itself, chooses the same ids in the same order
    alone = methods.select(pool_frame.filter(offered), settings.config)
    assert data.storage.read_parquet(light.file)["id"].to_list() == alone.provenance["id"].to_list()


@pytest.mark.parametrize("method", ["random", "dedup", "ratio", "near_dedup", "zip"])
def test_a_warm_refresh_after_appended_records_matches_the_whole_pool(
    data: Data, method: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw_dir: Path
) -> None:
    settings = _settings(method)
    light_ws, whole_ws = _workspace(data.storage, f"warm_light_{method}"), _workspace(data.storage, f"warm_{method}")
    first = select_subset(light_ws, data.pool, data.scores, settings, data.scoring)
    earlier = _whole_pool(monkeypatch, whole_ws, data.pool, data.scores, settings, data.scoring)
    folder = tmp_path / "data"
    shutil.copytree(data.data, folder)
    shutil.copy(raw_dir / APPENDED, folder)
    pool = build_pool(light_ws, [str(folder)])
    scores = score_pool(light_ws, pool, data.scoring, data.scores)
    light = select_subset(light_ws, pool, scores, settings, data.scoring, first)
    whole = _whole_pool(monkeypatch, whole_ws, pool, scores, settings, data.scoring, earlier)
    assert light.reselect == "warm" and light.churn is not None and light.churn.added
    _same(light, whole, data.storage)


def test_text_reading_methods_keep_the_whole_pool_path() -> None:
    """zip_paper measures zlib over every record, zip_hierarchical without its shards' winners reads them all; ZIP
    and the ratio baselines need the scores' sizes, and a stratified ZIP its strata's text."""
    options = SelectionOptions(budget=10)
    for method in ("zip_paper", "zip_hierarchical"):
        assert not methods.reads_light_columns(method_config(method, options), None, 100)
    for method in ("zip", "ratio"):
        assert not methods.reads_light_columns(method_config(method, options), None, 100)  # no sizes to read
    stratified = dataclasses.replace(options, stratify=Stratify("source"))
    assert not methods.reads_light_columns(method_config("zip", stratified), None, 100)
