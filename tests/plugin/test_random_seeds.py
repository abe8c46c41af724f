"""Random at several seeds: partitions of their own, each a different draw, so that the law can weigh a method
against random's spread."""

import json
import statistics
from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.dagster import TrainingSettings
from entropy_assets.stages import LawResult, SubsetResult, Table, TrainingResult

from .test_pipeline import SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
LAW = dg.AssetKey(["t", "entropy_law"])


def test_random_seeds_are_partitions_with_seeds_of_their_own(data_dir: Path, tmp_path: Path) -> None:
    pipeline = settings(data_dir, methods=("zip", "random"), random_seeds=3, seed=7)
    assert pipeline.partitions.get_partition_keys() == ["zip", "random", "random_seed1", "random_seed2"]
    assert [pipeline.subset(key).config.seed for key in ("random", "random_seed1", "random_seed2")] == [7, 8, 9]
    assert pipeline.subset("random_seed2").folder == "random_seed2_60"
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.refresh()
        drawn = {
            key: SubsetResult.from_metadata(graph.metadata(graph.run([SUBSET], key), SUBSET))
            for key in ("random", "random_seed1")
        }
    assert all(subset.size == 60 for subset in drawn.values())
    assert drawn["random"].version != drawn["random_seed1"].version


@pytest.mark.parametrize("overrides", [{"random_seeds": 0}, {"random_seeds": 2, "methods": ("zip",)}])
def test_random_seeds_need_random(data_dir: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="random_seeds must be 1 or more"):
        settings(data_dir, **overrides)


def _metrics(folder: Path, method: str, z: dict[int, float]) -> None:
    """Metrics files of ``method`` at budget 60, one per training seed: Z as given, L fixed."""
    folder.mkdir(exist_ok=True)
    for seed, value in z.items():
        metrics = {"first_epoch_loss": 3.0, "eval_loss": value, "step_losses": [3.2, 3.0]}
        (folder / f"{method}_60_{seed}.json").write_text(json.dumps(metrics), encoding="utf-8")


@pytest.mark.parametrize(
    ("zip_z", "passed", "sentence", "cell"),
    [
        ((2.70, 2.72), True, "zip at 60: ZIP beats random (Z 2.7100 against random's 3.0017", "beats random"),
        ((2.91, 2.91), False, "zip at 60: not resolved with 8 runs; need about", "not resolved; need about"),
    ],
)
def test_training_seeds_enter_the_verdict_and_its_check(
    data_dir: Path, tmp_path: Path, zip_z: tuple[float, float], passed: bool, sentence: str, cell: str
) -> None:
    metrics = tmp_path / "metrics"
    random_z = {"random": (3.00, 3.01), "random_seed1": (3.02, 3.03), "random_seed2": (2.98, 2.97)}
    for method, z in {**random_z, "zip": zip_z}.items():
        _metrics(metrics, method, dict(enumerate(z)))
    training = TrainingSettings(backend="file", metrics_path=str(metrics / "{method}_{budget}_{seed}.json"), seeds=2)
    pipeline = settings(data_dir, methods=("zip", "random"), random_seeds=3, training=training)
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.refresh()
        for key in ("zip", *random_z):
            graph.run([SUBSET], key)
            run = graph.metadata(graph.run([TRAINING], key), TRAINING)
            assert run["training_seeds"] == [0, 1] and run["eval_version"]
        zip_run = TrainingResult.from_metadata(graph.metadata(graph.run([TRAINING], "zip"), TRAINING))
        assert zip_run.performances == zip_z and zip_run.performance == pytest.approx(sum(zip_z) / 2)
        result = graph.run([LAW])
        (check,) = result.get_asset_check_evaluations()
        law = graph.metadata(result, LAW)
    assert check.passed is passed and check.description is not None and check.description.startswith(sentence)
    table = law["method_comparison"]
    assert isinstance(table, Table)
    rows = {row["method"]: row for row in table.rows}
    assert rows["random (3 subsets)"]["runs"] == 6 and rows["zip"]["runs"] == 8
    # The verdict's table: random's subsets' mean Z 3.0017 and their spread, the method's distance from that mean
    # in spreads, and the verdict in a few words.
    verdict = law["verdict"]
    assert isinstance(verdict, Table) and [row["method"] for row in verdict.rows] == ["zip"]
    (row,) = verdict.rows
    means = [sum(z) / 2 for z in random_z.values()]
    spread = statistics.stdev(means)
    assert row["Z"] == round(sum(zip_z) / 2, 4) and row["random Z"] == round(statistics.fmean(means), 4)
    assert row["random sd"] == round(spread, 4) and row["runs"] == 8
    assert row["distance (sd)"] == round((sum(zip_z) / 2 - statistics.fmean(means)) / spread, 2)
    assert str(row["verdict"]).startswith(cell) and ("training seeds:" in str(row["verdict"])) is not passed
    assert LawResult.from_metadata(law).comparison["random"]["60"]["training_seeds"] == 2


def test_file_backend_seeds_need_a_seed_placeholder() -> None:
    with pytest.raises(ValueError, match="needs \\{seed\\} in metrics_path"):
        TrainingSettings(backend="file", metrics_path="runs/{method}_{budget}.json", seeds=2)
