"""What the UI shows is what a result reads back: a subset's composition and churn, the law's forms and verdict, the
stored files' column schemas go through Dagster's event log as tables and come back as the result that wrote them,
and materializations recorded before they were tables (JSON) still read."""

import json
import logging
import shutil
import statistics
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from entropy_assets.dagster.events import dagster_metadata, plain_value
from entropy_assets.entropy_law import LawPoint
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.stages import (
    ColumnSchema,
    LawResult,
    LawSettings,
    ScoresResult,
    ScoringSettings,
    SubsetResult,
    SubsetSettings,
    Table,
    Workspace,
    build_pool,
    fit_entropy_law,
    score_pool,
    select_subset,
)
from entropy_assets.storage import Storage


def through_the_event_log(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` as an asset hands it to Dagster, stored in the event log and read back as the results read it."""
    event = dg.AssetMaterialization("t", metadata=dagster_metadata(metadata))
    stored = dg.deserialize_value(dg.serialize_value(event), dg.AssetMaterialization)
    return {name: plain_value(value) for name, value in stored.metadata.items()}


@pytest.fixture(scope="module")
def refreshed(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ScoresResult, SubsetResult, Path]:
    """500 real ShareGPT chats and 300 C4 documents, a ZIP subset of 60, then 120 Alpaca records added and the
    subset refreshed warm: the scores, the refreshed subset (with its churn) and the storage folder."""
    root = tmp_path_factory.mktemp("tables")
    data = root / "data"
    data.mkdir()
    for name in ("fastchat_dummy_conversation.json", "pretrain_c4_demo.jsonl"):
        shutil.copy(raw_dir / name, data)
    workspace = Workspace("t", Storage(str(root / "store")), logging.getLogger("test"))
    scoring = ScoringSettings()
    subset = SubsetSettings("zip", 60, method_config("zip", SelectionOptions(budget=60, k1=200, k2=40, k3=20)))
    pool = build_pool(workspace, [str(data)])
    first = select_subset(workspace, pool, score_pool(workspace, pool, scoring, None), subset, scoring)
    alpaca = json.loads((raw_dir / "alpaca52k_en_part18_51009-52002.json").read_text(encoding="utf-8"))[:120]
    (data / "alpaca.json").write_text(json.dumps(alpaca), encoding="utf-8")
    pool = build_pool(workspace, [str(data)])
    scores = score_pool(workspace, pool, scoring, None)
    return scores, select_subset(workspace, pool, scores, subset, scoring, first), root / "store"


def test_a_subset_reads_back_its_composition_churn_and_columns_from_the_event_log(refreshed) -> None:
    _, subset, _ = refreshed
    assert subset.churn is not None and subset.churn.added > 0 and subset.composition is not None
    back = through_the_event_log(subset.to_metadata())
    assert SubsetResult.from_metadata(back) == subset

    composition = back["composition"]
    assert isinstance(composition, Table)
    assert [name for name, _ in composition.columns] == ["facet", "value", "pool share", "subset share", "difference"]
    formats = {row["value"]: row for row in composition.rows if row["facet"] == "format"}
    assert set(formats) == {"sharegpt", "text", "alpaca"}  # the pool's three formats, chosen or not
    for row in composition.rows:
        mixed = subset.composition[row["facet"]]
        assert row["pool share"] == mixed.pool.get(row["value"])
        assert row["subset share"] == mixed.subset.get(row["value"])
        assert row["difference"] == round((row["subset share"] or 0.0) - (row["pool share"] or 0.0), 4)
    assert sum(formats[name]["pool share"] for name in formats) == pytest.approx(1.0, abs=1e-3)

    churn = back["churn"]
    assert isinstance(churn, Table) and [name for name, _ in churn.columns] == ["change", "reason", "samples"]
    added = sum(row["samples"] for row in churn.rows if row["change"] == "added")
    assert added == subset.churn.added and {row["change"] for row in churn.rows} <= {"added", "removed"}

    columns = back["dagster/column_schema"]
    assert isinstance(columns, ColumnSchema) and back["dagster/row_count"] == 60
    stored = pl.read_parquet(subset.path)
    assert [(name, kind) for name, kind, _ in columns.columns] == [(n, str(t)) for n, t in stored.schema.items()]
    about = {name: text for name, _, text in columns.columns}
    assert about["marginal_bytes"] == "ZIP: the compressed bytes it added to the chosen set"


def test_the_scores_say_what_their_file_holds(refreshed) -> None:
    scores, _, _ = refreshed
    back = through_the_event_log(scores.to_metadata())
    assert ScoresResult.from_metadata(back) == scores
    stored = pl.read_parquet(scores.path)
    assert back["dagster/row_count"] == stored.height == 920
    columns = back["dagster/column_schema"]
    assert [(name, kind) for name, kind, _ in columns.columns] == [(n, str(t)) for n, t in stored.schema.items()]
    assert all(text for _, _, text in columns.columns)  # every column of the scores is described


def law_points() -> list[LawPoint]:
    """Three random subsets, zip, dedup and longest at budget 40 on one data version: L near a line in R."""
    runs = [
        ("zip", 2.0, 2.70, 0.02),
        ("random", 3.0, 3.00, -0.01),
        ("random_seed1", 3.1, 3.04, 0.015),
        ("random_seed2", 2.9, 2.98, -0.02),
        ("dedup", 2.5, 2.95, 0.01),
        ("longest", 3.5, 3.10, 0.0),
    ]
    return [
        LawPoint(ratio=r, loss=5.0 - 0.5 * r + d, performance=z, method=m, budget=40, data_version="a" * 24)
        for m, r, z, d in runs
    ]


def test_the_law_reads_back_its_forms_verdict_and_plots_from_the_event_log(tmp_path: Path) -> None:
    workspace = Workspace("t", Storage(str(tmp_path)), logging.getLogger("test"))
    law = fit_entropy_law(workspace, law_points(), LawSettings())
    back = through_the_event_log(law.to_metadata())
    assert LawResult.from_metadata(back) == law
    # The plots come first: the metadata table opens on them.
    assert list(back)[:4] == ["loss_vs_ratio", "data_versions", "performance_vs_ratio", "method_comparison_plot"]

    verdicts = {row["method"]: row for row in back["verdict"].rows}
    assert list(verdicts) == ["dedup", "longest", "zip"]  # every method against random
    verdict = verdicts["zip"]
    randoms = (3.00, 3.04, 2.98)
    sd = statistics.stdev(randoms)
    assert verdict["method"] == "zip" and verdict["budget"] == 40 and verdict["Z"] == 2.7
    assert verdict["random Z"] == round(statistics.fmean(randoms), 4) and verdict["random sd"] == round(sd, 4)
    assert verdict["distance (sd)"] == round((2.7 - statistics.fmean(randoms)) / sd, 2)
    assert verdict["verdict"] == "beats random" and verdict["runs"] == 4

    fit = json.loads(Path(law.path).read_text(encoding="utf-8"))
    forms = {row["form"]: row for row in back["loss_forms"].rows}
    assert back["loss_forms"].rows[0]["form"] == fit["loss_vs_ratio"]["best"]["form"]
    for name, exact in fit["loss_vs_ratio"]["forms"].items():
        assert forms[name]["R²"] == float(f"{exact['r_squared']:.4g}")
        assert forms[name]["CV error"] == float(f"{exact['cv_rmse']:.4g}")
        low, high = exact["b_interval"]
        assert forms[name]["b interval"] == f"[{low:.4g}, {high:.4g}]"
    plane = {row["term"]: row for row in back["performance_plane"].rows}
    exact_plane = fit["performance_vs_ratio_and_loss"]["coefficients"]
    assert plane["R"]["coefficient"] == float(f"{exact_plane['ratio']:.4g}")
    plots = {row["plot"]: Path(row["file"]) for row in back["plots"].rows}
    assert all(path.read_bytes() == law.plots[name] for name, path in plots.items())


def test_materializations_recorded_as_json_still_read(refreshed, tmp_path: Path) -> None:
    """Before the tables: a subset's composition and churn, the law's plots, forms and verdict were JSON."""
    _, subset, _ = refreshed
    assert subset.composition is not None and subset.churn is not None
    old = subset.to_metadata()
    old["composition"] = {f: {"pool": dict(m.pool), "subset": dict(m.subset)} for f, m in subset.composition.items()}
    old["churn"] = dict(subset.churn.by_reason)
    del old["dagster/column_schema"]
    read = SubsetResult.from_metadata(through_the_event_log(old))
    assert read.composition == subset.composition and read.churn == subset.churn and read.columns is None

    workspace = Workspace("t", Storage(str(tmp_path)), logging.getLogger("test"))
    law = fit_entropy_law(workspace, law_points(), LawSettings())
    old = law.to_metadata()
    old["plots"] = dict(law.plot_paths)
    old["verdict"] = "zip at 40: ZIP beats random (...)."
    old["loss_forms"] = {"best": {"form": "linear"}}
    read_law = LawResult.from_metadata(through_the_event_log(old))
    assert read_law.plot_paths == law.plot_paths and read_law.plots == law.plots
    assert read_law.verdict_rows == () and read_law.loss is not None and read_law.loss.forms == ()
