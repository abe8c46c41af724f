"""The selection pipeline as Dagster assets, materialized on real data in a temporary instance."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import entropy_assets.stages.pool as pool_stage
from entropy_assets.dagster import (
    EntropyStorage,
    SelectionPipeline,
    SelectionPipelineComponent,
    selection_pipeline_defs,
)
from entropy_assets.dagster.events import latest, plain_value
from entropy_assets.selection import methods
from entropy_assets.sources import LoadedPool, load_pool, read_pool
from entropy_assets.sources.discovery import Source
from entropy_assets.sources.parts import LoadSettings
from entropy_assets.stages import PoolResult
from entropy_assets.storage import Storage

RAW = dg.AssetKey(["t", "raw_data"])
POOL = dg.AssetKey(["t", "pool"])
SCORES = dg.AssetKey(["t", "compression_scores"])
SUBSET = dg.AssetKey(["t", "selected_subset"])


def settings(data_dir: Path, **overrides: object) -> SelectionPipeline:
    values: dict[str, object] = {
        "name": "t",
        "paths": [str(data_dir)],
        "methods": ("zip", "random", "dedup"),
        "budgets": (60,),
        "k1": 200,
        "k2": 40,
        "k3": 20,
    }
    values.update(overrides)
    return SelectionPipeline(**values)  # type: ignore[arg-type]


def observed_version(instance: dg.DagsterInstance) -> str:
    """The data version of the latest observation of the raw data."""
    record = instance.get_latest_data_version_record(RAW)
    assert record is not None and record.asset_observation is not None
    return str(record.asset_observation.data_version)


class Graph:
    """Materializes a pipeline's assets against one instance and one storage folder."""

    def __init__(self, pipeline: SelectionPipeline, storage: Path, instance: dg.DagsterInstance) -> None:
        self.defs = selection_pipeline_defs(pipeline, storage=EntropyStorage(base_path=str(storage)))
        self.instance = instance

    def run(self, keys: list[dg.AssetKey], partition: str | None = None, **kwargs: object) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            list(self.defs.assets or []),
            instance=self.instance,
            resources=dict(self.defs.resources or {}),
            selection=keys,
            partition_key=partition,
            **kwargs,  # type: ignore[arg-type]
        )

    def metadata(self, result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
        events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
        assert len(events) == 1
        return {name: plain_value(value) for name, value in events[0].materialization.metadata.items()}

    def refresh(self) -> tuple[dict[str, object], dict[str, object]]:
        """Observe the raw data, then materialize pool and scores; returns their metadata."""
        self.run([RAW])
        result = self.run([POOL, SCORES])
        return self.metadata(result, POOL), self.metadata(result, SCORES)


def test_the_graph_materializes_on_real_data(data_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir), tmp_path / "store", instance)
        pool, scores = graph.refresh()
        assert pool["records_read"] == 800 and pool["records_kept"] == 800
        assert pool["formats"] == {"sharegpt": 500, "text": 300}
        assert pool["raw_data_version"] == observed_version(instance)
        assert scores["rescored"] == 800 and scores["reused"] == 0

        sizes = {}
        for method in ("zip", "random", "dedup"):
            metadata = graph.metadata(graph.run([SUBSET], method), SUBSET)
            sizes[method] = metadata["size"]
            exported = Path(str(metadata["export"]))
            lines = exported.read_text(encoding="utf-8").splitlines()
            assert len(lines) == 60
            # Written back in the records' own form: chats keep their conversations, C4 records their text.
            assert all("conversations" in json.loads(line) or "text" in json.loads(line) for line in lines)
            provenance = pl.read_parquet(str(metadata["path"]))
            assert provenance.height == 60 and provenance["id"].n_unique() == 60
            assert str(metadata["ratio_histogram"]).startswith("![per-sample ratios](data:image/png;base64,")
            assert Path(str(metadata["plot_path"])).read_bytes()[:4] == b"\x89PNG"
        zip_meta = graph.metadata(graph.run([SUBSET], "zip"), SUBSET)
        random_meta = graph.metadata(graph.run([SUBSET], "random"), SUBSET)
        assert zip_meta["compression_ratio_zlib9"] < random_meta["compression_ratio_zlib9"]


def test_a_pipeline_reads_each_file_with_its_mapping_and_exports_the_records_as_read(
    raw_dir: Path, tmp_path: Path
) -> None:
    """500 real ShareGPT chats beside 120 Alpaca records rewritten as a KTO file of its own names, read through a
    per-path mapping: the pool counts both formats, the subset is exported as the .json its files are, holding the
    user's records exactly, and the provenance holds the KTO labels."""
    data = tmp_path / "data"
    data.mkdir()
    chats = json.loads((raw_dir / "fastchat_dummy_conversation.json").read_text(encoding="utf-8"))
    (data / "chats.json").write_text(json.dumps(chats), encoding="utf-8")
    alpaca = json.loads((raw_dir / "alpaca52k_en_part18_51009-52002.json").read_text(encoding="utf-8"))[:120]
    kto = [{"Ask": r["instruction"], "Reply": r["output"], "thumbs_up": i % 2 == 0} for i, r in enumerate(alpaca)]
    (data / "kto.json").write_text(json.dumps(kto), encoding="utf-8")
    mapping = {"prompt": "Ask", "completion": "Reply", "label": "thumbs_up"}
    pipeline = settings(data, export_suffix="input", columns_by_path={str(data / "kto.json"): mapping})
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        pool, _ = graph.refresh()
        assert pool["formats"] == {"sharegpt": 500, "unpaired_preference": 120}
        assert pool["version"] != pool["raw_data_version"] == observed_version(instance)
        metadata = graph.metadata(graph.run([SUBSET], "random"), SUBSET)
        exported = json.loads(Path(str(metadata["export"])).read_text(encoding="utf-8"))
        assert str(metadata["export"]).endswith(".json") and len(exported) == 60
        assert all(record in chats or record in kto for record in exported)
        provenance = pl.read_parquet(str(metadata["path"]))
        kept = provenance.filter(pl.col("source").str.ends_with("kto.json"))
        assert kept.height and kept["labels"].to_list() == [
            json.dumps({"label": kto[index]["thumbs_up"]}) for index in kept["index"].to_list()
        ]
        assert (
            provenance.filter(pl.col("source").str.ends_with("chats.json"))["labels"].null_count() == 60 - kept.height
        )


def test_unchanged_data_is_not_rescored_and_a_change_rescores_only_what_changed(data_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir), tmp_path / "store", instance)
        graph.refresh()
        first_version = observed_version(instance)

        _, scores = graph.refresh()
        assert scores["rescored"] == 0 and scores["reused"] == 800
        assert observed_version(instance) == first_version

        with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
            for i in range(5):
                handle.write(json.dumps({"text": f"A new document, number {i}, about data compression."}) + "\n")
        pool, scores = graph.refresh()
        assert pool["records_kept"] == 805
        assert scores["rescored"] == 5 and scores["reused"] == 800
        assert observed_version(instance) != first_version


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def materialized_subset(
    data_dir: Path, store: Path, instance: dg.DagsterInstance, method: str, **overrides: object
) -> tuple[Graph, Path, dict[str, bytes]]:
    """The graph with one subset materialized: the graph, the subsets' folder and its files."""
    graph = Graph(settings(data_dir, **overrides), store, instance)
    graph.refresh()
    graph.run([SUBSET], method)
    folder = store / "t" / "selected_subset"
    return graph, folder, files(folder)


def test_a_failed_selection_leaves_the_previous_subset_intact(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        graph, folder, before = materialized_subset(data_dir, tmp_path / "store", instance, "zip")
        assert sorted(name.split(".", 1)[1] for name in before) == [
            "jsonl",
            "parquet",
            "ratio_histogram.png",
            "rows.parquet",
        ]
        assert {name.split("/")[0] for name in before} == {"zip_60"}

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("selection failed mid-way")

        monkeypatch.setattr(methods, "zip_select", broken)
        result = graph.run([SUBSET], "zip", raise_on_error=False)
        assert not result.success
        assert files(folder) == before


def test_a_failed_export_leaves_the_previous_files_intact(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing a new subset version (not only while selecting) leaves no half-written file. (A full
    re-selection: a warm one keeps the random draws, and one new document would rarely make a new version.)"""
    with dg.instance_for_test() as instance:
        graph, folder, before = materialized_subset(data_dir, tmp_path / "store", instance, "random", reselect="full")
        with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"text": "A new document makes a new pool and a new subset version."}) + "\n")
        graph.refresh()

        original = pl.DataFrame.write_parquet

        def fails_after_writing_some(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
            Path(str(file)).write_bytes(b"partial")
            raise OSError("disk full")

        monkeypatch.setattr(pl.DataFrame, "write_parquet", fails_after_writing_some)
        result = graph.run([SUBSET], "random", raise_on_error=False)
        monkeypatch.setattr(pl.DataFrame, "write_parquet", original)
        assert not result.success
        assert files(folder) == before


def test_budgets_become_a_second_partition_dimension(data_dir: Path, tmp_path: Path) -> None:
    pipeline = settings(data_dir, methods=("zip", "random"), budgets=(30, 60))
    partitions = pipeline.partitions
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.refresh()
        key = dg.MultiPartitionKey({"method": "zip", "budget": "30"})
        metadata = graph.metadata(graph.run([SUBSET], key), SUBSET)
        assert metadata["size"] == 30
        export = Path(str(metadata["export"]))
        assert export.parent.name == "zip_30" and export.name == f"{metadata['version']}.jsonl"


def test_component_and_factory_build_the_same_definitions(data_dir: Path, tmp_path: Path) -> None:
    component = SelectionPipelineComponent(
        name="t", paths=["data"], methods=["zip", "random", "dedup"], budgets=[60], k1=200, k2=40, k3=20
    )
    assert component.settings(tmp_path) == settings(data_dir)
    from_component = selection_pipeline_defs(component.settings(tmp_path))
    from_factory = selection_pipeline_defs(settings(data_dir))
    graph_a, graph_b = from_component.resolve_asset_graph(), from_factory.resolve_asset_graph()
    assert graph_a.get_all_asset_keys() == graph_b.get_all_asset_keys() == {RAW, POOL, SCORES, SUBSET}
    for key in (POOL, SCORES, SUBSET):
        a, b = graph_a.get(key), graph_b.get(key)
        assert (a.code_version, a.kinds, a.group_name) == (b.code_version, b.kinds, b.group_name)
    assert graph_a.get(SUBSET).partitions_def.get_partition_keys() == ["zip", "random", "dedup"]


def test_the_bundled_code_location_loads() -> None:
    from dagster_project.definitions import defs

    graph = defs().resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "sample/raw_data",
        "sample/pool",
        "sample/compression_scores",
        "sample/shard_selection",  # zip_hierarchical's shards, a partition each
        "sample/selected_subset",
        "sample/training_run",
        "sample/entropy_law",
    }
    checks = {(check.asset_key.to_user_string(), check.name) for check in graph.asset_check_keys}
    assert checks == {
        ("sample/compression_scores", "quality"),
        ("sample/training_run", "entropy_law_risk"),
        ("sample/selected_subset", "composition"),
        ("sample/entropy_law", "zip_beats_random"),  # the sample draws random at 3 seeds
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methods": ("zip", "best")}, "not in"),
        ({"budgets": ()}, "budgets"),
        ({"k1": 10, "k2": 40}, "k1 >= k2 >= k3"),
        ({"name": "has space"}, "identifier"),
        ({"export_suffix": "/../../outside.jsonl"}, "export_suffix must be one of"),
        ({"export_suffix": ".txt"}, "export_suffix must be one of"),
    ],
)
def test_bad_settings_are_rejected_when_the_pipeline_is_defined(data_dir: Path, overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        settings(data_dir, **overrides)


def test_storage_paths_stay_inside_the_base_path(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    with pytest.raises(ValueError, match="stay inside"):
        storage.path("..", "elsewhere.parquet")
    with pytest.raises(ValueError, match="stay inside"):
        storage.path("/etc/passwd")


def test_the_component_is_registered_for_dg() -> None:
    """``dg list components`` finds components through this entry point group."""
    from importlib.metadata import entry_points

    modules = {entry.value for entry in entry_points(group="dagster_dg_cli.registry_modules")}
    assert "entropy_assets.dagster" in modules


def test_the_workspace_validates() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_a_file_changing_while_the_pool_is_read_fails_without_writing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir), tmp_path / "store", instance)
        graph.run([RAW])
        original = pool_stage.read_part
        edited: list[bool] = []

        def read_then_edit(source: Source, load: LoadSettings) -> LoadedPool:
            loaded = original(source, load)
            if not edited:  # after the first file is read, another one changes
                edited.append(True)
                with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"text": "written while the pool was being read"}) + "\n")
            return loaded

        monkeypatch.setattr(pool_stage, "read_part", read_then_edit)
        result = graph.run([POOL], raise_on_error=False)
        assert not result.success
        assert "changed while it was being read" in str(result.get_step_failure_events()[0].step_failure_data.error)
        folder = tmp_path / "store" / "t" / "pool"
        stored = sorted(entry.name for entry in folder.iterdir())
        assert stored == ["part_features", "parts"], "no pool is stored, only parts and their features"
        stored_parts = len(list((folder / "parts").glob("*.parquet")))
        monkeypatch.undo()
        # the parts stored before the change are of files that did not change: the next build reuses them, and
        # its pool is what reading every file afresh gives
        graph.run([RAW, POOL])
        pool = latest(instance, POOL, PoolResult)
        assert pool is not None and pool.files - pool.files_parsed == stored_parts >= 1
        expected = load_pool(str(data_dir)).frame
        assert_frame_equal(read_pool(tmp_path / "store" / pool.file), expected)


def test_a_pool_load_failing_on_a_record_then_finished_reports_the_change(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer paused between the two halves of a record: the load fails on the half record, and by then the
    record is whole. The change is the cause to report, with the load's error behind it."""
    target = data_dir / "pretrain_c4_demo.jsonl"
    record = json.dumps({"text": "a record written in two parts"}) + "\n"
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir), tmp_path / "store", instance)
        graph.run([RAW])
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(record[:20])
        original = pool_stage.read_part

        def read_then_finish_the_record(source: Source, load: LoadSettings) -> LoadedPool:
            try:
                return original(source, load)
            finally:
                if source.path == target:
                    with open(target, "a", encoding="utf-8") as handle:
                        handle.write(record[20:])

        monkeypatch.setattr(pool_stage, "read_part", read_then_finish_the_record)
        result = graph.run([POOL], raise_on_error=False)
        assert not result.success
        error = result.get_step_failure_events()[0].step_failure_data.error
        change = error.cause if error is not None else None  # Dagster's own error wraps the asset's
        assert change is not None and "changed while it was being read" in change.message
        assert change.cause is not None and "it is the last line, with no newline" in change.cause.message
        pool_folder = tmp_path / "store" / "t" / "pool"
        assert not pool_folder.exists() or {entry.name for entry in pool_folder.iterdir()} <= {"parts", "part_features"}
