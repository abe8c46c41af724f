"""Nothing is read, written or deleted outside the storage root: not through ``..``, absolute paths or symlinks."""

import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from entropy_assets.dagster.events import dagster_metadata
from entropy_assets.dagster.history import AuditError, audit_run, plan_prune
from entropy_assets.stages import PoolResult, TrainingResult
from entropy_assets.storage import Storage

from .test_pipeline import POOL, SCORES, Graph, settings


def test_a_symlink_inside_the_storage_that_leads_out_is_refused_and_nothing_lands_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "store", tmp_path / "outside"
    (root / "t").mkdir(parents=True)
    outside.mkdir()
    (root / "t" / "pool").symlink_to(outside, target_is_directory=True)
    storage = Storage(str(root))
    frame = pl.DataFrame({"a": [1, 2]})
    with pytest.raises(ValueError, match="outside the storage root") as error:
        storage.write_parquet(frame, "t", "pool", "v1.parquet")
    assert str(outside.resolve()) in str(error.value)
    assert list(outside.iterdir()) == []
    with pytest.raises(ValueError, match="outside the storage root"):
        storage.read_parquet("t/pool/v1.parquet")


def test_a_storage_root_that_is_itself_a_symlink_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    storage = Storage(str(tmp_path / "link"))
    storage.write_parquet(pl.DataFrame({"a": [1]}), "t", "pool", "v1.parquet")
    assert (real / "t" / "pool" / "v1.parquet").is_file()


def forged_pool(path: str, file: str, version: str) -> dict[str, object]:
    """The metadata of a well-formed pool materialization whose recorded file may lead anywhere (an edited event
    log, a bad external report)."""
    pool = PoolResult(path, file, version, 1, 1, {}, 0, 1, {"text": 1}, 1, 1, 1)
    return dagster_metadata(pool.to_metadata())


@pytest.mark.parametrize("file", ["../outside.parquet", "t/../../outside.parquet", "/etc/hostname", "t/\0.parquet"])
def test_a_recorded_file_outside_the_storage_is_never_read(data_dir: Path, tmp_path: Path, file: str) -> None:
    """A pool materialization whose metadata names a file outside the storage (an edited event log, a bad
    external report): the scores refuse to read it, and say why."""
    (tmp_path / "outside.parquet").write_bytes(b"not read")
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir), tmp_path / "store", instance)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(POOL, metadata=forged_pool(str(tmp_path), file, "forged"))
        )
        result = graph.run([SCORES], raise_on_error=False)
        assert not result.success
        error = str(result.get_step_failure_events()[0].step_failure_data.error)
        assert "must stay inside" in error
        assert not (tmp_path / "store" / "t" / "compression_scores").exists()


def test_prune_refuses_to_delete_a_recorded_file_outside_the_storage(tmp_path: Path) -> None:
    victim = tmp_path / "victim.parquet"
    victim.write_bytes(b"keep me")
    store = tmp_path / "store"
    (store / "t" / "pool").mkdir(parents=True)
    with dg.instance_for_test() as instance:
        for version, file in (("a", "../victim.parquet"), ("b", "t/pool/b.parquet")):
            metadata = forged_pool(os.path.join(store, file), file, version)
            instance.report_runless_asset_event(dg.AssetMaterialization(POOL, metadata=metadata))
        with pytest.raises(ValueError, match="must stay inside"):
            plan_prune(instance, "t", keep=1)
    assert victim.read_bytes() == b"keep me"


def test_an_audit_refuses_a_recorded_file_outside_the_storage(tmp_path: Path) -> None:
    outside = tmp_path / "outside.parquet"
    pl.DataFrame({"rank": [0], "id": ["x:0"], "source": ["x"], "content_hash": ["00"]}).write_parquet(outside)
    store = tmp_path / "store"
    store.mkdir()
    training = dg.AssetKey(["t", "training_run"])
    with dg.instance_for_test() as instance:
        run = TrainingResult(
            path=str(store / "t/training_run/run.json"),
            file="t/training_run/run.json",
            method="zip",
            budget=1,
            first_epoch_loss=1.0,
            eval_loss=None,
            performance=None,
            performance_measure="eval_loss",
            loss_kind="causal_lm",
            steps=1,
            tokens=1,
            seconds=0.0,
            tokens_per_second=0.0,
            subset_ratio_zlib9=1.0,
            subset_samples=1,
            subset_version="forged",
            selected_subset_version="forged",
            subset_file="../outside.parquet",
            pool_file="t/pool/forged.parquet",
            pool_version="forged",
            backend="file",
            scores={},
            loss_curve=b"png",
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(training, metadata=dagster_metadata(run.to_metadata()))
        )
        with pytest.raises(AuditError, match=r"recorded subset_file '\.\./outside\.parquet'.*must stay inside"):
            audit_run(instance, "t")
