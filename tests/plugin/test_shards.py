"""A sharded pipeline: compression scores partitioned by content-hash shard, and hierarchical ZIP over the shards."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from entropy_assets.compression import make_compressor
from entropy_assets.dagster import SelectionPipeline, TrainingSettings
from entropy_assets.dagster.events import latest
from entropy_assets.quality import DEFAULT
from entropy_assets.scoring import gate_scores, score_samples, shard_keys, shard_of
from entropy_assets.stages import SubsetResult

from .test_pipeline import POOL, RAW, SCORES, SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
WINNERS = dg.AssetKey(["t", "shard_selection"])

SHARDS = 4


def sharded(data_dir: Path, **overrides: object) -> SelectionPipeline:
    values: dict[str, object] = {"methods": ("zip", "zip_hierarchical", "random"), "shards": SHARDS, **overrides}
    return settings(data_dir, **values)


def score_shards(graph: Graph) -> dict[str, dict[str, object]]:
    """Materialize every shard of the scores, one run each (as a backfill does); their metadata by shard."""
    return {shard: graph.metadata(graph.run([SCORES], shard), SCORES) for shard in shard_keys(SHARDS)}


def select_shards(graph: Graph) -> dict[str, dict[str, object]]:
    """Materialize every shard's selection for zip_hierarchical, one run each; their metadata by shard."""
    return {shard: graph.metadata(graph.run([WINNERS], shard), WINNERS) for shard in shard_keys(SHARDS)}


def append_document(data_dir: Path, text: str) -> None:
    with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": text}) + "\n")


Scored = tuple[Graph, Path, dict[str, object], dict[str, dict[str, object]]]


@pytest.fixture(scope="module")
def scored(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    """A sharded pipeline on 800 real records with its pool and every shard of its scores materialized, shared by the
    tests that only read it or add subsets: the graph, its storage, and the metadata of the pool and the shards."""
    root = tmp_path_factory.mktemp("sharded")
    data = root / "data"
    data.mkdir()
    for name in ("fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"):
        shutil.copy(raw_dir / name, data)
    with dg.instance_for_test() as instance:
        graph = Graph(sharded(data), root / "store", instance)
        graph.run([RAW])
        pool = graph.metadata(graph.run([POOL]), POOL)
        yield graph, root / "store", pool, score_shards(graph)


def test_shards_score_the_whole_pool_as_one_run_would(scored: Scored) -> None:
    _, store, pool_meta, scores = scored
    assert sorted(pool_meta["shard_fingerprints"]) == shard_keys(SHARDS)  # type: ignore[call-overload]
    copy = store / str(pool_meta["shard_file"])  # a folder per shard, of its piece of each part: that shard's rows
    assert sorted(file.name for file in copy.iterdir()) == shard_keys(SHARDS)
    ordered = pl.concat([pl.read_parquet(copy / shard / "*.parquet") for shard in shard_keys(SHARDS)])
    assert ordered.height == 800 and ordered["shard"].is_sorted()
    assert sum(int(m["dagster/row_count"]) for m in scores.values()) == 800  # type: ignore[call-overload]
    assert all(m["rescored"] == m["dagster/row_count"] > 100 for m in scores.values())  # type: ignore[operator]

    pool = pl.read_parquet(store / str(pool_meta["file"]))
    stored = pl.concat([pl.read_parquet(store / str(m["file"])) for m in scores.values()])
    frame = pool.select("id", "content_hash", "n_bytes", "text")
    whole, _ = gate_scores(score_samples(frame, make_compressor("zstd"))[0], frame, DEFAULT)
    assert stored.sort("id").equals(whole.sort("id"))  # sizes, the gate's signals and its verdict
    for shard, metadata in scores.items():  # each shard holds exactly its own samples
        frame = pl.read_parquet(store / str(metadata["file"]))
        assert set(shard_of(frame["content_hash"], SHARDS)) == {shard_keys(SHARDS).index(shard)}


def test_a_data_change_rescores_only_the_shards_it_touched(data_dir: Path, tmp_path: Path) -> None:
    """After one new document, the subsets refuse the old scores, naming the stale shard, and writing nothing;
    scoring again rescores that shard alone."""
    with dg.instance_for_test() as instance:
        store = tmp_path / "store"
        graph = Graph(sharded(data_dir), store, instance)
        graph.run([RAW, POOL])
        first = score_shards(graph)

        append_document(data_dir, "A new document about content-hash shards and what they rescore.")
        graph.run([RAW, POOL])
        result = graph.run([SUBSET], "random", raise_on_error=False)
        assert not result.success
        error = str(result.get_step_failure_events()[0].step_failure_data.error)
        assert "shard(s)" in error and "are not scored for pool version" in error
        assert not (store / "t" / "selected_subset").exists()

        second = score_shards(graph)
        changed = {shard for shard in first if first[shard]["version"] != second[shard]["version"]}
        assert len(changed) == 1
        (shard,) = changed
        assert second[shard]["rescored"] == 1 and second[shard]["reused"] == first[shard]["dagster/row_count"]
        assert f"shard(s) {shard} are not scored" in error
        for other in set(first) - changed:  # untouched shards reuse their stored file whole
            assert second[other]["rescored"] == 0 and second[other]["file"] == first[other]["file"]


def test_subsets_select_over_every_shard_and_hierarchical_zip_stays_close(scored: Scored) -> None:
    graph = scored[0]
    ratios = {}
    winners = select_shards(graph)
    for shard, selected in winners.items():  # each shard keeps twice its share of the budget: 2 * 60 / 4
        assert selected["dagster/row_count"] == 30 and selected["shard"] == shard and selected["reselect"] == "full"
    again = select_shards(graph)  # the same scores and settings: the stored winners, not a new selection
    assert {shard: m["version"] for shard, m in again.items()} == {shard: m["version"] for shard, m in winners.items()}
    assert {m["reselect"] for m in again.values()} == {"reused"}
    for method in ("zip", "zip_hierarchical", "random"):
        metadata = graph.metadata(graph.run([SUBSET], method), SUBSET)
        assert metadata["size"] == 60
        ratios[method] = metadata["compression_ratio_zlib9"]
        provenance = pl.read_parquet(str(metadata["path"]))
        assert provenance["id"].n_unique() == 60
    assert ratios["zip_hierarchical"] < ratios["random"]
    assert ratios["zip_hierarchical"] < ratios["zip"] * 1.1
    hierarchical = graph.metadata(graph.run([SUBSET], "zip_hierarchical"), SUBSET)
    assert hierarchical["config"]["shards"] == SHARDS
    # The final pass chose among the shards' winners only, from the whole pool's count.
    chosen = set(pl.read_parquet(str(hierarchical["path"]))["id"].to_list())
    offered = set().union(*(pl.read_parquet(str(m["path"]))["id"].to_list() for m in winners.values()))
    assert chosen <= offered and hierarchical["pool_size"] == scored[2]["dagster/row_count"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shards": 0}, "shards must be 1..4096"),
        ({"shards": 1, "methods": ("zip_hierarchical",)}, "zip_hierarchical needs shards of 2 or more"),
        ({"shards": 2, "methods": ("zip_hierarchical",), "hierarchical_oversample": 0.5}, "oversample must be >= 1"),
    ],
)
def test_bad_shard_settings_are_rejected(data_dir: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(data_dir, **overrides)


def test_the_scores_are_partitioned_only_when_sharded(data_dir: Path) -> None:
    from entropy_assets.dagster import selection_pipeline_defs

    plain = selection_pipeline_defs(settings(data_dir)).resolve_asset_graph().get(SCORES)
    split = selection_pipeline_defs(sharded(data_dir)).resolve_asset_graph().get(SCORES)
    assert plain.partitions_def is None
    assert split.partitions_def.get_partition_keys() == shard_keys(SHARDS)
    # Subsets by method and budget read every shard: the graph's partition mappings are valid.
    graph = selection_pipeline_defs(sharded(data_dir, budgets=(30, 60))).resolve_asset_graph()
    graph.validate_partitions()


def test_a_sensor_rescores_only_the_changed_shard_then_reselects(data_dir: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"first_epoch_loss": 3.0, "eval_loss": 2.5}))
    training = TrainingSettings(backend="file", metrics_path=str(metrics), eval_samples=0)
    pipeline = sharded(data_dir, methods=("zip_hierarchical", "random"), training=training)
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        (sensor,) = [s for s in graph.defs.sensors or [] if s.name == "t_rescore_shards"]

        def sensed() -> dict[str, set[str]]:
            """What the sensor requests now: partitions by asset."""
            context = dg.build_sensor_context(instance=instance, definitions=graph.defs)
            requested: dict[str, set[str]] = {}
            for request in sensor.evaluate_tick(context).run_requests or []:
                requested.setdefault(str(request.job_name), set()).add(str(request.partition_key))
            return requested

        first_pool = graph.metadata(graph.run([RAW, POOL]), POOL)
        assert sensed() == {"t_score_shards": set(shard_keys(SHARDS))}  # a first pool: every shard
        score_shards(graph)
        assert sensed() == {}  # shard selections and subsets never made are left alone
        select_shards(graph)
        for method in ("zip_hierarchical", "random"):
            graph.run([SUBSET, TRAINING], method)
        assert sensed() == {}
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance)
        assert tick.total_requested == 0

        append_document(data_dir, "A document that arrives after the first selection.")
        graph.run([RAW])
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=tick.cursor)
        assert tick.get_num_requested(POOL) == 1
        pool = graph.metadata(graph.run([POOL]), POOL)
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0  # the shards and the subsets are the sensor's to request

        old, new = first_pool["shard_fingerprints"], pool["shard_fingerprints"]
        (changed,) = [shard for shard in new if new[shard] != old[shard]]
        assert sensed() == {"t_score_shards": {changed}}
        assert graph.metadata(graph.run([SCORES], changed), SCORES)["rescored"] == 1
        assert sensed() == {"t_select_shards": {changed}}  # only the touched shard selects again, warm
        assert graph.metadata(graph.run([WINNERS], changed), WINNERS)["reselect"] == "warm"
        assert sensed() == {"t_select_subsets": {"zip_hierarchical", "random"}}
        changed_subsets = set()
        for method in ("zip_hierarchical", "random"):
            before = latest(instance, SUBSET, SubsetResult, method)
            after = SubsetResult.from_metadata(graph.metadata(graph.run([SUBSET], method), SUBSET))
            if before is None or after.version != before.version:
                changed_subsets.add(method)
        assert sensed() == {}
        assert "zip_hierarchical" in changed_subsets  # ZIP takes the new document; random may not draw it
        tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=instance, cursor=tick.cursor)
        assert tick.get_requested_partitions(TRAINING) == changed_subsets  # only a new subset version trains
