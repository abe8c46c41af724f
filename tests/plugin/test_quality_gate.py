"""The quality gate in the asset graph, on real records with planted noise: the scores count exclusions by reason
and name their files, no method's subset holds an excluded sample (hierarchical ZIP's shards included), and the
quality check warns when a new data version arrives full of noise."""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from entropy_assets.noise import noisy_records
from entropy_assets.scoring import shard_keys
from entropy_assets.stages import ScoresResult

from .test_pipeline import RAW, SCORES, SUBSET, Graph, settings

WINNERS = dg.AssetKey(["t", "shard_selection"])


def plant(data_dir: Path, raw_dir: Path, kind: str, count: int, name: str) -> None:
    """A file of ``count`` real Alpaca records whose output carries noise of ``kind``."""
    records = json.loads((raw_dir / "alpaca52k_en_part03_06382-09407.json").read_text())[:count]
    (data_dir / name).write_text(json.dumps(noisy_records(records, kind, "output", seed=count), ensure_ascii=False))


def quality_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "quality"]
    return evaluation


def test_no_subset_holds_an_excluded_sample_and_a_noisy_arrival_warns(
    raw_copy: Callable[..., Path], raw_dir: Path, tmp_path: Path
) -> None:
    data = raw_copy(["fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"])
    plant(data, raw_dir, "base64", 16, "attachments.json")  # 2% of 816
    pipeline = settings(data, methods=("zip", "zip_paper", "random"), budgets=(60,))
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.run([RAW])
        result = graph.run([dg.AssetKey(["t", "pool"]), SCORES])
        scores = ScoresResult.from_metadata(graph.metadata(result, SCORES))
        assert scores.excluded == {"encoded": 16} and scores.excluded_sources == {"attachments.json": 16}
        assert quality_check(result).passed
        stored = pl.read_parquet(scores.path)
        excluded = set(stored.filter(pl.col("excluded").is_not_null())["id"].to_list())
        assert all(sample.startswith("attachments.json:") for sample in excluded)
        assert stored.filter(pl.col("excluded").is_not_null())["excluded_value"].min() > 256
        for method in ("zip", "zip_paper", "random"):
            subset = graph.metadata(graph.run([SUBSET], method), SUBSET)
            chosen = set(pl.read_parquet(str(subset["path"]))["id"].to_list())
            assert len(chosen) == 60 and not chosen & excluded, method
            assert subset["pool_size"] == 800

        plant(data, raw_dir, "hexdump", 80, "dumps.json")  # a new source, full of noise
        graph.run([RAW])
        result = graph.run([dg.AssetKey(["t", "pool"]), SCORES])
        check = quality_check(result)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert "rose from 1.96% to 10.71%" in str(check.description)
        assert "encoded 96" in str(check.description) and "dumps.json (80)" in str(check.description)


def test_hierarchical_shards_offer_no_excluded_sample(
    raw_copy: Callable[..., Path], raw_dir: Path, tmp_path: Path
) -> None:
    data = raw_copy(["fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"])
    plant(data, raw_dir, "random", 40, "scraped.json")
    pipeline = settings(data, methods=("zip_hierarchical",), budgets=(60,), shards=2)
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.run([RAW])
        graph.run([dg.AssetKey(["t", "pool"])])
        shards = [ScoresResult.from_metadata(graph.metadata(graph.run([SCORES], s), SCORES)) for s in shard_keys(2)]
        assert sum(sum(s.excluded.values()) for s in shards) == 40
        for shard in shard_keys(2):
            winners = graph.metadata(graph.run([WINNERS], shard), WINNERS)
            assert not pl.read_parquet(str(winners["path"]))["id"].str.starts_with("scraped.json:").any()
        subset = graph.metadata(graph.run([SUBSET], "zip_hierarchical"), SUBSET)
        assert not pl.read_parquet(str(subset["path"]))["id"].str.starts_with("scraped.json:").any()
        assert subset["pool_size"] == 800
