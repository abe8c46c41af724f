"""Audits: what a run trained on (down to file hashes and sample ids), and subset diffs with their reasons."""

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from entropy_assets.cli import main as cli
from entropy_assets.dagster.events import latest
from entropy_assets.dagster.history import AuditError, audit_run, diff_subsets, law_history, plan_prune
from entropy_assets.stages import TrainingResult

from .test_automation import TRAINING, trained_graph
from .test_pipeline import SUBSET, Graph


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Graph, Path, Path]]:
    """Every asset and partition materialized once on 800 real records, for the audits that only read: the graph,
    its data folder and its root (storage in ``root / 'store'``)."""
    root = tmp_path_factory.mktemp("audit")
    data = root / "data"
    data.mkdir()
    for name in ("fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"):
        shutil.copy(raw_dir / name, data)
    with dg.instance_for_test() as instance:
        yield trained_graph(data, root, instance), data, root


def test_a_run_audit_names_its_subset_pool_raw_files_and_samples(trained: tuple[Graph, Path, Path]) -> None:
    graph, data_dir, root = trained
    instance = graph.instance
    audit = audit_run(instance, "t", partition="zip")
    facts = audit.facts
    assert facts["raw_files"] == {str(p): sha256(p) for p in sorted(data_dir.iterdir())}
    assert facts["samples"] == 60 and len(audit.rows) == 60
    run = latest(instance, TRAINING, TrainingResult, "zip")
    assert run is not None and facts["selected_subset_version"] == run.selected_subset_version
    subset = pl.read_parquet(root / "store" / str(facts["subset_file"]))
    assert [row["id"] for row in audit.rows] == subset.sort("rank")["id"].to_list()
    pool = pl.read_parquet(root / "store" / str(facts["pool_file"]))
    assert set(subset["id"]) <= set(pool["id"])
    assert str(facts["pool_file"]).endswith(f"pool/{facts['raw_data_version']}")
    # By run id too, and in every output form.
    by_id = audit_run(instance, "t", run_id=run_id_of(instance, "random")[:8])
    assert by_id.facts["partition"] == "random"
    assert json.loads(by_id.render("json"))["samples"] == 60
    assert by_id.render("markdown").startswith("### training run")
    with pytest.raises(AuditError, match="no materialization"):
        audit_run(instance, "t", run_id="ffffffff")


def run_id_of(instance: dg.DagsterInstance, partition: str) -> str:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TRAINING, asset_partitions=[partition]), limit=1
    ).records
    return records[0].run_id


def test_a_subset_diff_says_what_changed_and_why(data_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = trained_graph(data_dir, tmp_path, instance)
        with pytest.raises(AuditError, match="a diff needs two"):
            diff_subsets(instance, "t", "random")
        first = graph.metadata(graph.run([SUBSET], "random"), SUBSET)
        old_subset = pl.read_parquet(tmp_path / "store" / str(first["file"]))

        # Change one chosen C4 document and add new ones.
        chosen = old_subset.filter(pl.col("id").str.starts_with("pretrain_c4_demo"))["index"][0]
        path = data_dir / "pretrain_c4_demo.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[chosen] = json.dumps({"text": "This document was rewritten after the first selection."})
        lines += [json.dumps({"text": f"New document {i} about entropy and compression."}) for i in range(200)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        graph.refresh()
        graph.run([SUBSET], "random")

        diff = diff_subsets(instance, "t", "random")
        added = {r["id"]: r["reason"] for r in diff.rows if r["change"] == "added"}
        removed = {r["id"]: r["reason"] for r in diff.rows if r["change"] == "removed"}
        rewritten = f"pretrain_c4_demo.jsonl:{chosen}"
        changed = {r["id"] for r in diff.rows if r["change"] == "content changed"}
        assert removed.get(rewritten) == "changed content" or rewritten in changed
        assert any(reason == "new data" for reason in added.values())
        assert diff.facts["kept"] + diff.facts["added"] == 60 == diff.facts["kept"] + diff.facts["removed"]
        old_pool = pl.read_parquet(tmp_path / "store" / str(first["pool_file"]))
        for sample, reason in added.items():
            assert (sample in set(old_pool["id"])) == (reason != "new data")
        assert diff.facts["old_version"] == first["version"]

        # The same from the terminal, as markdown for a review.
        home = instance.root_directory
        assert cli(["audit", "diff", "--dagster-home", home, "--partition", "random", "--format", "markdown"]) == 0


def test_history_lists_r_and_l_per_data_version(trained: tuple[Graph, Path, Path]) -> None:
    audit = law_history(trained[0].instance, "t")
    assert audit.facts == {"runs": 3, "data_versions": 1}
    assert {row["method"] for row in audit.rows} == {"zip", "random", "dedup"}
    assert all(row["L"] == 3.0 and row["version"] == "v1" for row in audit.rows)
    assert "R and L by data version" in audit.render("table")


def test_pruning_is_explicit_and_keeps_what_kept_runs_use(data_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = trained_graph(data_dir, tmp_path, instance)
        store = tmp_path / "store"
        first_pool = {p.name for p in (store / "t" / "pool").iterdir()}
        with open(data_dir / "pretrain_c4_demo.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"text": "A second data version."}) + "\n")
        graph.refresh()
        graph.run([SUBSET, TRAINING], "zip")  # only zip moves to the new version
        before = {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}

        home = instance.root_directory
        assert cli(["prune", "--keep", "1", "--dagster-home", home]) == 0  # a dry run
        assert {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()} == before

        plan = plan_prune(instance, "t", keep=1)
        removed = {str(p.relative_to(store)) for p in plan.remove}
        # zip's old subset and run go, and the old scores; the old pool stays, as random's and dedup's kept runs use it.
        assert removed and all(
            path.startswith(("t/selected_subset/zip_60/", "t/training_run/zip_60/", "t/compression_scores/"))
            for path in removed
        )
        assert {p.name for p in (store / "t" / "pool").iterdir()} >= first_pool
        assert cli(["prune", "--keep", "1", "--dagster-home", home, "--yes"]) == 0
        after = {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}
        assert after == before - removed
        for method in ("zip", "random", "dedup"):  # every kept run can still be audited
            assert audit_run(instance, "t", partition=method).facts["samples"] == 60
        with pytest.raises(ValueError, match="at least 1"):
            plan_prune(instance, "t", keep=0)
