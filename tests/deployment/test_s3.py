"""The selection graph with its storage on an S3 endpoint, with real data: moto's standalone server over HTTP on a
local port, reached by s3fs (botocore) and polars through the standard AWS environment variables, the way a
deployment reaches a bucket. The assertions read the objects in the bucket, not the metadata alone."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from entropy_assets.dagster import EntropyStorage, SelectionPipeline, TrainingSettings, selection_pipeline_defs
from entropy_assets.dagster.events import latest
from entropy_assets.stages import PoolResult, ScoresResult, SubsetResult, TrainingResult
from entropy_assets.storage import COMPLETE_SUFFIX, Storage

from .jobs import (
    BUDGET,
    NAME,
    POOL,
    RAW_FILES,
    SCORES,
    SUBSET,
    compute_log_failures,
    copy_raw_files,
    dask_cluster,
    pipeline_settings,
    reconstructable_selection_job,
    run_selection,
)

s3fs = pytest.importorskip("s3fs", reason="needs s3fs and moto[server]: pip install -e '.[dev]'")
moto_server = pytest.importorskip("moto.server", reason="needs moto[server]: pip install -e '.[dev]'")

BUCKET = "entropy-assets-test"
ACCESS_KEY = "AKIAMOTOTESTONLY0000"
SECRET_KEY = "moto-test-secret-never-in-metadata"  # a dummy key, for the local server only
SHARD_SELECTION = dg.AssetKey([NAME, "shard_selection"])
TOTAL = sum(RAW_FILES.values())
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@dataclass(frozen=True)
class Bucket:
    """The test bucket, and a client of its own (no listings cache) to look into it."""

    fs: s3fs.S3FileSystem

    def url(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        """Every object under ``prefix``, relative to it."""
        root = f"{BUCKET}/{prefix}/"
        return sorted(key[len(root) :] for key in self.fs.find(root))

    def modified(self, prefix: str) -> dict[str, object]:
        """When each object under ``prefix`` was last written."""
        return {name: info["LastModified"] for name, info in self.fs.find(f"{BUCKET}/{prefix}", detail=True).items()}

    def read_parquet(self, prefix: str, key: str) -> pl.DataFrame:
        with self.fs.open(f"{BUCKET}/{prefix}/{key}", "rb") as handle:
            return pl.read_parquet(handle)

    def read_text(self, prefix: str, key: str) -> str:
        return self.fs.cat_file(f"{BUCKET}/{prefix}/{key}").decode("utf-8")


@pytest.fixture(scope="module")
def bucket() -> Iterator[Bucket]:
    """moto's S3 server on a free local port, with one bucket; the endpoint and dummy keys are set in the environment
    (and undone afterwards), where botocore, s3fs, polars and every process started meanwhile find them."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # a line per request otherwise
    server.start()
    host, port = server.get_host_and_port()
    try:
        with pytest.MonkeyPatch.context() as env:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_S3_ENDPOINT"):
                env.delenv(name, raising=False)
            env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
            env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.setenv("AWS_REGION", "us-east-1")
            env.setenv("AWS_CONFIG_FILE", os.devnull)  # nothing from this machine's ~/.aws
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
            env.setenv("AWS_EC2_METADATA_DISABLED", "true")
            s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an earlier endpoint
            fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
            fs.mkdir(BUCKET)
            yield Bucket(fs)
            s3fs.S3FileSystem.clear_instance_cache()
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def scheduler_address(bucket: Bucket) -> Iterator[str]:
    """The tests' dask cluster (``dask_cluster``), started once the endpoint is in the environment it inherits."""
    pytest.importorskip("dagster_dask", reason="needs the distributed extra: pip install 'entropy-assets[distributed]'")
    with dask_cluster() as address:
        yield address


def shard_assets(data_dir: str) -> list[dg.AssetKey]:
    """What a shard's run materializes: its scores, and zip_hierarchical's selection within the shard where the
    pipeline selects shards as an asset of their own (``shard_selection``)."""
    keys = selection_pipeline_defs(pipeline_settings(data_dir, shards=2)).resolve_all_asset_keys()
    return [SCORES, *([SHARD_SELECTION] if SHARD_SELECTION in keys else [])]


@contextlib.contextmanager
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance in the test's own folder (which the dask workers reach too)."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def stored_metadata(events: list[dg.DagsterEvent]) -> str:
    """Every materialization's metadata in the events, as one string."""
    return json.dumps(
        [
            {name: str(value.value) for name, value in e.step_materialization_data.materialization.metadata.items()}
            for e in events
            if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        ]
    )


def check_subsets(
    bucket: Bucket, prefix: str, instance: dg.DagsterInstance, pool: PoolResult, methods: tuple[str, ...]
) -> None:
    """Each subset's provenance, export and plot are objects in the bucket, of the budget's size."""
    keys = bucket.keys(prefix)
    pool_ids = Storage(bucket.url(prefix)).read_parquet(pool.file, columns=["id"])["id"]
    for method in methods:
        subset = latest(instance, SUBSET, SubsetResult, method)
        assert subset is not None and subset.pool_version == pool.version
        assert subset.path == bucket.url(f"{prefix}/{subset.file}")
        assert subset.file == f"{NAME}/selected_subset/{method}_{BUDGET}/{subset.version}.parquet"
        stem = subset.file.removesuffix(".parquet")
        assert {f"{stem}.parquet", f"{stem}.jsonl", f"{stem}.ratio_histogram.png"} <= set(keys)
        assert subset.export_path == bucket.url(f"{prefix}/{stem}.jsonl")
        assert subset.plot_path == bucket.url(f"{prefix}/{stem}.ratio_histogram.png")
        provenance = bucket.read_parquet(prefix, subset.file)
        assert provenance.height == BUDGET and provenance["id"].n_unique() == BUDGET
        assert provenance["id"].is_in(pool_ids).all()
        lines = bucket.read_text(prefix, f"{stem}.jsonl").splitlines()
        assert len(lines) == BUDGET
        assert all("conversations" in json.loads(line) or "text" in json.loads(line) for line in lines)
        assert bucket.fs.cat_file(f"{BUCKET}/{prefix}/{stem}.ratio_histogram.png")[:4] == b"\x89PNG"


def _pool_parts(keys: list[str], pool: PoolResult) -> list[str]:
    return [key.split("/")[-1] for key in keys if key.startswith(pool.file + "/") and key.endswith(".parquet")]


def check_pool_and_scores(bucket: Bucket, prefix: str, pool: PoolResult, scores: list[ScoresResult]) -> None:
    """The pool's folder holds one part per raw file and its marker, and reads back whole: through the storage, by
    polars straight from the bucket, and part by part; the scores cover every sample once."""
    keys = bucket.keys(prefix)
    assert pool.path == bucket.url(f"{prefix}/{pool.file}")
    parts = _pool_parts(keys, pool)
    assert [part[:6] for part in parts] == ["00000.", "00001."]
    assert f"{pool.file}{COMPLETE_SUFFIX}" in keys
    assert sum(bucket.read_parquet(prefix, f"{pool.file}/{part}").height for part in parts) == TOTAL
    assert {part.split(".", 1)[1] for part in parts} == {
        key.split("/")[-1] for key in keys if key.startswith(f"{NAME}/pool/parts/")
    }
    whole = Storage(bucket.url(prefix)).read_parquet(pool.file)
    assert whole.height == TOTAL and whole["id"].n_unique() == TOTAL
    assert pl.read_parquet(bucket.url(f"{prefix}/{pool.file}/")).height == TOTAL  # as a table, by polars
    assert all(s.path == bucket.url(f"{prefix}/{s.file}") and s.pool_version == pool.version for s in scores)
    ids = pl.concat([bucket.read_parquet(prefix, s.file) for s in scores])["id"]
    assert ids.len() == TOTAL and ids.n_unique() == TOTAL
    assert not [key for key in keys if key.endswith(".tmp")]  # no staging object left behind
    assert not [key for key in keys if ".checkpoint" in key]  # ZIP keeps no checkpoint on a remote store


def test_the_graph_stores_its_pool_scores_and_subsets_in_the_bucket(
    bucket: Bucket, raw_dir: Path, tmp_path: Path
) -> None:
    data = copy_raw_files(raw_dir, tmp_path / "data")
    prefix = "graph"
    job = reconstructable_selection_job(str(data), bucket.url(prefix), "in_process")
    with dagster_instance(tmp_path) as instance:
        events = run_selection(job, instance, [POOL, SCORES])
        for method in ("zip", "random"):
            events += run_selection(job, instance, [SUBSET], method)

        pool = latest(instance, POOL, PoolResult)
        scores = latest(instance, SCORES, ScoresResult)
        assert pool is not None and scores is not None
        check_pool_and_scores(bucket, prefix, pool, [scores])
        check_subsets(bucket, prefix, instance, pool, ("zip", "random"))
        # The keys reach every client through the environment: no metadata holds them.
        shown = stored_metadata(events)
        assert bucket.url(prefix) in shown
        assert SECRET_KEY not in shown and ACCESS_KEY not in shown

        # A second pool run (say, after a restart) finds the same version whole, and writes nothing.
        before = bucket.modified(prefix)
        run_selection(job, instance, [POOL])
        assert bucket.modified(prefix) == before


def test_sharded_scores_and_hierarchical_zip_on_the_bucket(bucket: Bucket, raw_dir: Path, tmp_path: Path) -> None:
    """Each shard's run reads the shard-ordered pool copy (polars, straight from the bucket); hierarchical ZIP then
    selects among the shards."""
    data = copy_raw_files(raw_dir, tmp_path / "data")
    prefix = "sharded"
    scores_job = reconstructable_selection_job(str(data), bucket.url(prefix), "in_process", shards=2)
    subsets_job = reconstructable_selection_job(str(data), bucket.url(prefix), "in_process", shards=2, subsets=True)
    with dagster_instance(tmp_path) as instance:
        run_selection(scores_job, instance, [POOL])
        for shard in ("0", "1"):
            run_selection(scores_job, instance, shard_assets(str(data)), shard)
        for method in ("zip_hierarchical", "random"):
            run_selection(subsets_job, instance, [SUBSET], method)

        pool = latest(instance, POOL, PoolResult)
        shards = [latest(instance, SCORES, ScoresResult, shard) for shard in ("0", "1")]
        assert pool is not None and all(shards)
        assert pool.shard_file == f"{NAME}/pool/{pool.version}.shards2"  # a folder per shard: its piece of each part
        pieces = [name for s in "01" for name in bucket.fs.ls(f"{BUCKET}/{prefix}/{pool.shard_file}/{s}")]
        assert len(pieces) == 2 * 2 and all(
            bucket.fs.exists(f"{BUCKET}/{prefix}/{pool.shard_file}/{s}.complete") for s in "01"
        )
        assert sum(bucket.read_parquet(prefix, piece.split(f"{prefix}/", 1)[1]).height for piece in pieces) == TOTAL
        check_pool_and_scores(bucket, prefix, pool, [s for s in shards if s is not None])
        assert [s.file.split("/")[2] for s in shards if s is not None] == ["0", "1"]
        check_subsets(bucket, prefix, instance, pool, ("zip_hierarchical", "random"))
        hierarchical = latest(instance, SUBSET, SubsetResult, "zip_hierarchical")
        assert hierarchical is not None and hierarchical.config["shards"] == 2


@pytest.mark.dask_cluster
def test_the_graph_runs_on_a_dask_cluster_with_its_storage_on_the_bucket(
    bucket: Bucket, scheduler_address: str, raw_dir: Path, tmp_path: Path
) -> None:
    """Every step runs in a dask worker process (one run, three steps over two workers), reading what another
    wrote: the endpoint reaches the workers through the environment they were started with."""
    data = copy_raw_files(raw_dir, tmp_path / "data")
    prefix = "dask"
    run_config = yaml.safe_load((DEPLOY / "dask" / "existing_cluster.yaml").read_text())
    run_config["execution"]["config"]["cluster"]["existing"]["address"] = scheduler_address
    job = reconstructable_selection_job(str(data), bucket.url(prefix), "dask")
    with dagster_instance(tmp_path) as instance:
        events = run_selection(job, instance, [POOL, SCORES, SUBSET], "zip", run_config=run_config)
        steps = [e for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert len(steps) == 3 and all(e.pid != os.getpid() for e in steps)
        assert compute_log_failures(events) == []

        pool = latest(instance, POOL, PoolResult)
        scores = latest(instance, SCORES, ScoresResult)
        assert pool is not None and scores is not None
        check_pool_and_scores(bucket, prefix, pool, [scores])
        check_subsets(bucket, prefix, instance, pool, ("zip",))
        assert SECRET_KEY not in stored_metadata(events)


def test_built_in_training_stores_its_metrics_and_curve_in_the_bucket(
    bucket: Bucket, raw_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="needs the train extra")
    data = copy_raw_files(raw_dir, tmp_path / "data")
    prefix = "training"
    tiny = {"context": 64, "d_model": 32, "layers": 1, "heads": 2, "batch_size": 8, "threads": 1}
    settings = SelectionPipeline.model_validate(
        {
            **pipeline_settings(str(data)).model_dump(),
            "methods": ("zip",),
            "training": TrainingSettings(steps=5, eval_samples=50, builtin=tiny),
        }
    )
    defs = selection_pipeline_defs(settings, storage=EntropyStorage(base_path=bucket.url(prefix)))
    training = dg.AssetKey([NAME, "training_run"])
    with dagster_instance(tmp_path) as instance:
        result = dg.materialize(
            list(defs.assets or []),
            instance=instance,
            resources=dict(defs.resources or {}),
            selection=[POOL, SCORES, SUBSET, training],
            partition_key="zip",
        )
        assert result.success
        run = latest(instance, training, TrainingResult, "zip")
        subset = latest(instance, SUBSET, SubsetResult, "zip")
        assert run is not None and subset is not None
        assert run.path == bucket.url(f"{prefix}/{run.file}") and run.selected_subset_version == subset.version
        metrics = json.loads(bucket.read_text(prefix, run.file))
        assert len(metrics["step_losses"]) == 5 and metrics["first_epoch_loss"] == run.first_epoch_loss
        curve = run.file.removesuffix(".json") + ".loss_curve.png"
        assert bucket.fs.cat_file(f"{BUCKET}/{prefix}/{curve}")[:4] == b"\x89PNG"
        # The run's checkpoint was kept on local disk and removed once the results were stored; none in the bucket.
        assert not [key for key in bucket.keys(prefix) if "checkpoint" in key]


def test_a_listing_does_not_hide_what_another_process_wrote_since(bucket: Bucket) -> None:
    """A long-lived process (a dask worker, a code server) lists a folder, another process then writes into it: the
    first one must see the new file, not its listing of before."""
    storage = Storage(bucket.url("listing"))
    storage.write_parquet(pl.DataFrame({"a": [1, 2]}), "t", "pool", "v", "00000.a.parquet")
    assert storage.read_parquet("t/pool/v").height == 2  # lists the folder
    folder = f"{BUCKET}/listing/t/pool/v"
    bucket.fs.copy(f"{folder}/00000.a.parquet", f"{folder}/00001.b.parquet")  # another client: another process
    assert storage.exists("t/pool/v/00001.b.parquet")
    assert storage.read_parquet("t/pool/v/00001.b.parquet").height == 2
    assert storage.read_parquet("t/pool/v").height == 4


def test_a_failed_write_leaves_no_object_and_keeps_the_one_before(bucket: Bucket) -> None:
    """A write that fails (here, while the parquet file is made) uploads nothing: no new object, no temporary
    one, and the object already under the name is untouched."""
    storage = Storage(bucket.url("failed"))
    storage.write_parquet(pl.DataFrame({"a": [1, 2]}), "t", "scores.parquet")
    unwritable = pl.DataFrame({"a": pl.Series([object()], dtype=pl.Object)})
    for name in ("scores.parquet", "new.parquet"):
        with pytest.raises(pl.exceptions.ComputeError, match="Object"):
            storage.write_parquet(unwritable, "t", name)
    assert bucket.keys("failed") == ["t/scores.parquet"]
    assert bucket.read_parquet("failed", "t/scores.parquet")["a"].to_list() == [1, 2]


def test_a_pool_folder_a_killed_copy_left_is_completed_then_kept(bucket: Bucket) -> None:
    """A remote store has no folder to rename into place: a copy cut short (and what a build under other settings
    left) is completed on the next call, and a folder marked whole is never changed."""
    storage = Storage(bucket.url("folder"))
    files = []
    for name, rows in (("a", 3), ("b", 2)):
        file = ("t", "pool", "parts", f"{name}.parquet")
        storage.write_parquet(pl.DataFrame({"id": [f"{name}{i}" for i in range(rows)]}), *file)
        files.append(file)
    folder = f"{BUCKET}/folder/t/pool/v"
    bucket.fs.copy(f"{BUCKET}/folder/t/pool/parts/a.parquet", f"{folder}/00000.a.parquet")  # cut short after one
    bucket.fs.copy(f"{BUCKET}/folder/t/pool/parts/b.parquet", f"{folder}/00000.other.parquet")  # other settings

    pool = storage.link_folder(files, "t", "pool", "v")
    assert str(pool) == bucket.url("folder/t/pool/v")
    assert bucket.keys("folder/t/pool/v") == ["00000.a.parquet", "00001.b.parquet"]
    assert bucket.read_text("folder", f"t/pool/v{COMPLETE_SUFFIX}").split() == ["00000.a.parquet", "00001.b.parquet"]
    assert storage.read_parquet("t/pool/v")["id"].to_list() == ["a0", "a1", "a2", "b0", "b1"]

    storage.link_folder(files[:1], "t", "pool", "v")  # written once: kept as it is
    assert storage.read_parquet("t/pool/v").height == 5
