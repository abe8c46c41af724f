"""The pipeline's steps as plain functions, on real data and without Dagster: each writes its versioned files once,
hands on a typed result, and that result survives the trip through metadata exactly."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from entropy_assets.entropy_law import LawPoint, law_ratio
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.stages import (
    LawResult,
    LawSettings,
    MetadataError,
    PoolResult,
    RawDataResult,
    RiskResult,
    ScoresResult,
    ScoringSettings,
    SubsetResult,
    SubsetSettings,
    TrainingResult,
    TrainingSettings,
    Workspace,
    assess_risk,
    build_pool,
    fit_entropy_law,
    holdout_mask,
    observe_raw_data,
    score_pool,
    score_shard,
    select_subset,
    train_on_subset,
)
from entropy_assets.stages.scores import pool_fingerprints, shard_rows
from entropy_assets.storage import Storage

FILES = ("fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl")


@dataclasses.dataclass
class Steps:
    """What each step handed on, and the settings it ran with."""

    workspace: Workspace
    raw: RawDataResult
    pool: PoolResult
    scores: ScoresResult
    subset: SubsetResult
    run: TrainingResult
    scoring: ScoringSettings
    subset_settings: SubsetSettings


@pytest.fixture(scope="module")
def steps(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Steps:
    """Raw data -> pool -> scores -> a ZIP subset of 60 -> a training run read from a metrics file, by the stages
    alone: 500 ShareGPT chats and 300 C4 documents."""
    root = tmp_path_factory.mktemp("stages")
    data = root / "data"
    data.mkdir()
    for name in FILES:
        shutil.copy(raw_dir / name, data)
    workspace = Workspace("t", Storage(str(root / "store")), logging.getLogger("test"))
    raw = observe_raw_data([str(data)])
    pool = build_pool(workspace, [str(data)])
    scoring = ScoringSettings()
    scores = score_pool(workspace, pool, scoring, None)
    options = SelectionOptions(budget=60, k1=200, k2=40, k3=20)
    subset_settings = SubsetSettings("zip", 60, method_config("zip", options), holdout=50)
    subset = select_subset(workspace, pool, scores, subset_settings, scoring)
    (root / "metrics.json").write_text('{"first_epoch_loss": 3.5, "eval_loss": 2.5, "step_losses": [4.0, 3.0]}')
    training = TrainingSettings(backend="file", metrics_path=str(root / "metrics.json"), eval_samples=50)
    run = train_on_subset(workspace, subset, "zip", 60, training, run_id="0123456789abcdef")
    return Steps(workspace, raw, pool, scores, subset, run, scoring, subset_settings)


def test_each_step_hands_on_what_the_next_reads(steps: Steps) -> None:
    raw, pool, scores = steps.raw, steps.pool, steps.scores
    subset, run = steps.subset, steps.run
    assert pool.version == raw.version and pool.records_kept == 800 and pool.formats == {"sharegpt": 500, "text": 300}
    assert scores.pool_version == pool.version and scores.rows == 800 and scores.rescored == 800
    assert subset.pool_version == pool.version and subset.pool_file == pool.file and subset.size == 60
    assert subset.pool_size == 750  # 50 evaluation samples are never offered
    assert (run.selected_subset_version, run.subset_file, run.pool_version) == (
        subset.version,
        subset.file,
        pool.version,
    )
    assert (run.first_epoch_loss, run.eval_loss, run.performance) == (3.5, 2.5, 2.5)


def test_files_are_relative_to_the_storage_and_written_once(steps: Steps) -> None:
    workspace, pool, scoring = steps.workspace, steps.pool, steps.scoring
    storage = workspace.storage
    subset = steps.subset
    for result in (pool, steps.scores, subset, steps.run):
        assert Path(result.path) == Path(storage.base_path) / result.file
    chosen = storage.read_parquet(subset.file)
    texts = chosen.join(storage.read_parquet(pool.file), on="id").sort("rank")["text"].to_list()
    assert subset.ratio_zlib9 == round(law_ratio(texts), 4)
    evaluation = storage.read_parquet(pool.file).filter(holdout_mask(storage.read_parquet(pool.file), 50))
    assert not set(evaluation["id"]) & set(chosen["id"])

    stamp = Path(storage.base_path, subset.file).stat().st_mtime_ns
    again = select_subset(workspace, pool, steps.scores, steps.subset_settings, scoring)
    assert again.version == subset.version and again.file == subset.file
    assert Path(storage.base_path, subset.file).stat().st_mtime_ns == stamp  # a version is written once

    rescored = score_pool(workspace, pool, scoring, steps.scores)
    assert rescored.version == steps.scores.version and rescored.rescored == 0


def test_every_result_survives_the_trip_through_metadata(steps: Steps) -> None:
    for result in (steps.raw, steps.pool, steps.scores, steps.subset, steps.run):
        assert type(result).from_metadata(result.to_metadata()) == result, type(result).__name__
    workspace, pool = steps.workspace, steps.pool
    sharded = ScoringSettings(shards=4)
    shard = score_shard(workspace, pool, sharded, "2", None)
    assert (shard.shard, shard.shards) == ("2", 4) and 0 < shard.rows < pool.records_kept
    assert ScoresResult.from_metadata(shard.to_metadata()) == shard


def test_the_law_and_its_risk_check_as_results(steps: Steps) -> None:
    workspace = steps.workspace
    points = [
        LawPoint(ratio=r, loss=5.0 - 0.5 * r + d, performance=2.0 + 0.2 * r, method=m, budget=40, data_version=v)
        for v, shift in (("a" * 24, 0.0), ("b" * 24, 0.01))
        for m, r, d in (("zip", 2.0, 0.01), ("random", 3.0, -0.01), ("longest", 3.5, 0.0))
        for r in [r + shift]
    ]
    law = LawSettings(methods=("zip", "random", "longest"))
    fitted = fit_entropy_law(workspace, points, law)
    assert fitted.n_points == 6 and fitted.loss is not None and fitted.status == "fitted"
    assert LawResult.from_metadata(fitted.to_metadata()) == fitted
    assert LawResult.from_metadata(dataclasses.replace(fitted, fit_methods=()).to_metadata()).fit_methods == ()

    off = LawPoint(
        ratio=2.5, loss=5.0 - 0.5 * 2.5 + 0.5, performance=None, method="zip", budget=40, data_version="c" * 24
    )
    risk = assess_risk(off, [*points, off], law)
    assert not risk.passed and risk.status == "above band" and risk.assessment is not None
    back = RiskResult.from_metadata(risk.to_metadata(), passed=risk.passed, summary=risk.summary, severity="error")
    assert back.assessment == risk.assessment and back.status == risk.status
    assert back.point is not None and (back.point.ratio, back.point.loss) == (off.ratio, off.loss)
    assert assess_risk(None, points, law).to_metadata() == {"status": "no training run with R and L to check"}


def test_metadata_without_a_field_names_it(steps: Steps) -> None:
    metadata = steps.subset.to_metadata()
    del metadata["pool_file"]
    with pytest.raises(MetadataError, match="selected_subset metadata has no 'pool_file'"):
        SubsetResult.from_metadata(metadata)
    metadata = steps.run.to_metadata()
    metadata["budget"] = "forty"
    with pytest.raises(MetadataError, match="training_run metadata 'budget' is a str"):
        TrainingResult.from_metadata(metadata)
    nan = steps.run.to_metadata()
    nan["eval_loss"] = math.nan
    assert TrainingResult.from_metadata(nan).eval_loss is None


def test_the_stages_run_without_dagster() -> None:
    code = "import sys, entropy_assets.stages, entropy_assets.storage; print('dagster' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.strip() == "False"


def test_a_subset_of_the_wrong_pool_scores_says_what_to_materialize(steps: Steps) -> None:
    workspace, pool, scores = steps.workspace, steps.pool, steps.scores
    older = dataclasses.replace(scores, pool_version="0" * 24)
    with pytest.raises(ValueError, match=r"t/compression_scores was made from pool version 0+, not the latest"):
        select_subset(workspace, pool, older, steps.subset_settings, steps.scoring)


@pytest.mark.parametrize("method", ["zip", "random", "longest"])
def test_a_pool_of_no_file_says_the_budget_is_larger_than_the_pool(tmp_path: Path, method: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    workspace = Workspace("t", Storage(str(tmp_path / "store")), logging.getLogger("test"))
    pool = build_pool(workspace, [str(data)])
    scoring = ScoringSettings()
    scores = score_pool(workspace, pool, scoring, None)
    options = SelectionOptions(budget=60, k1=200, k2=40, k3=20)
    subset = SubsetSettings(method, 60, method_config(method, options), holdout=50)
    with pytest.raises(ValueError, match=r"budget of 60 samples is larger than the pool \(0 samples\)"):
        select_subset(workspace, pool, scores, subset, scoring)


def test_a_pool_sharded_again_reads_its_fingerprints_on_a_remote_store_too(tmp_path: Path) -> None:
    """A pool made at 2 shards and scored at 4 reads its shards' fingerprints from the pool itself: on a remote store
    (fsspec's memory filesystem here) as on a local one."""
    text = tmp_path / "c4.jsonl"
    text.write_text("".join(json.dumps({"text": f"document {i}: " + "words " * i}) + "\n" for i in range(60)))
    found = {}
    for base in (f"memory://bucket/{tmp_path.name}", str(tmp_path / "store")):
        workspace = Workspace("t", Storage(base), logging.getLogger("test"))
        pool = build_pool(workspace, [str(text)], shards=2)
        found[base] = pool_fingerprints(workspace.storage, pool, 4)
        assert sorted(found[base]) == ["0", "1", "2", "3"]
    remote, local = found.values()
    assert local == remote
    # polars reads the pool's folder (given with its trailing slash) for one shard of four
    rows = [shard_rows(workspace.storage, pool, shard, 4) for shard in ("0", "1", "2", "3")]
    assert sum(frame.height for frame in rows) == 60 and all(frame.height < 60 for frame in rows)


def test_stored_parquet_is_written_a_row_group_at_a_time(raw_dir: Path, tmp_path: Path) -> None:
    """Polars held a whole frame's encoding besides the frame when it wrote one row group: stored files are
    written ``PARQUET_ROW_GROUP`` rows at a time, and read back as they were."""
    import polars as pl
    import pyarrow.parquet as pq

    from entropy_assets.sources import load_pool
    from entropy_assets.storage import PARQUET_ROW_GROUP, Storage

    frame = load_pool(raw_dir / "alpaca52k_en_part01_00000-03252.json").frame
    rows = pl.concat([frame] * (PARQUET_ROW_GROUP // frame.height + 1))
    storage = Storage(str(tmp_path))
    path = storage.write_version(rows, "subset", "rows.parquet")
    metadata = pq.ParquetFile(path.path).metadata
    assert metadata.num_row_groups == -(-rows.height // PARQUET_ROW_GROUP) >= 2
    assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) == PARQUET_ROW_GROUP
    assert storage.read_parquet("subset", "rows.parquet").equals(rows)
