"""Refreshes of a subset: warm from its previous version, with its churn recorded, and a full re-selection every
``full_every`` refreshes with the warm one's drift."""

import json
from pathlib import Path

import dagster as dg

from entropy_assets.stages import SubsetResult

from .test_pipeline import SUBSET, Graph, settings


def chosen_ids(metadata: dict[str, object]) -> list[str]:
    import polars as pl

    return pl.read_parquet(str(metadata["path"]))["id"].to_list()


def test_a_removed_file_leaves_the_pool_and_the_subset(data_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir, methods=("zip", "random")), tmp_path / "store", instance)
        graph.refresh()
        first = {m: graph.metadata(graph.run([SUBSET], m), SUBSET) for m in ("zip", "random")}
        assert all(f["reselect"] == "full" and "churn_kept" not in f for f in first.values())

        (data_dir / "pretrain_c4_demo.jsonl").unlink()
        pool, _ = graph.refresh()
        assert pool["records_kept"] == 500
        for method, earlier in first.items():
            metadata = graph.metadata(graph.run([SUBSET], method), SUBSET)
            ids = chosen_ids(metadata)
            gone = [i for i in chosen_ids(earlier) if i.startswith("pretrain_c4_demo.jsonl")]
            assert metadata["reselect"] == "warm" and metadata["size"] == len(ids) == 60
            assert not [i for i in ids if i.startswith("pretrain_c4_demo.jsonl")]
            assert metadata["churn_removed"] == len(gone) == metadata["churn_added"]
            assert metadata["churn_kept"] == 60 - len(gone)
            reasons = {"removed: removed from data": len(gone), "added: outscored (now chosen)": len(gone)}
            rows = {(row["change"], row["reason"]): row["samples"] for row in metadata["churn"].rows}  # type: ignore[attr-defined]
            assert rows == (
                {("removed", "removed from data"): len(gone), ("added", "outscored (now chosen)"): len(gone)}
                if gone
                else {}
            )
            assert SubsetResult.from_metadata(metadata).churn.by_reason == (reasons if gone else {})  # type: ignore[union-attr]
            assert metadata["version"] != earlier["version"] or not gone


def test_every_nth_refresh_is_full_and_records_how_far_warm_drifted(data_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = Graph(settings(data_dir, methods=("zip",), full_every=2), tmp_path / "store", instance)
        seen = []
        for refresh in range(3):
            with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
                for i in range(20):
                    handle.write(json.dumps({"text": f"Refresh {refresh}, document {i}: " + "fresh words " * i}) + "\n")
            graph.refresh()
            seen.append(graph.metadata(graph.run([SUBSET], "zip"), SUBSET))
        assert [m["reselect"] for m in seen] == ["full", "warm", "full"]
        assert [m["refreshes_since_full"] for m in seen] == [0, 1, 0]
        assert "drift" not in seen[0] and "drift" not in seen[1]
        warm, full = seen[2]["warm_ratio_zlib9"], seen[2]["compression_ratio_zlib9"]
        assert isinstance(warm, float) and isinstance(full, float)
        assert seen[2]["drift"] == round(warm / full - 1, 4)
