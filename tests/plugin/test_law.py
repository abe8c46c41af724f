"""The entropy_law asset, the risk check on training runs, and `entropy-assets law`, against a real instance.

Runs use the ``file`` backend so that each run's L is set exactly: on a known line L = 5 - 0.5 R (plus a small
spread) for clean versions, and 0.5 above it for the bad one. R is the real subset's ratio.
"""

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from entropy_assets.cli import main as cli
from entropy_assets.dagster import LawSettings, SelectionPipelineComponent, TrainingSettings, law_points
from entropy_assets.stages import LawResult, Table

from .test_pipeline import SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
LAW = dg.AssetKey(["t", "entropy_law"])
DOWNSTREAM = dg.AssetKey(["t", "full_training"])
METHODS = ("zip", "random", "longest")
FILES = ("pretrain_c4_demo.jsonl", "fastchat_dummy_conversation.json", "self_instruct_user_oriented_instructions.jsonl")


class LawGraph(Graph):
    """A pipeline trained from metrics files, with a downstream asset that a blocking check can stop."""

    def __init__(self, root: Path, instance: dg.DagsterInstance, law: LawSettings | None = None) -> None:
        self.root = root
        metrics = str(root / "metrics" / "{method}_{budget}.json")
        training = TrainingSettings(backend="file", metrics_path=metrics, eval_samples=0)
        pipeline = settings(root / "data", methods=METHODS, budgets=(40,), training=training, law=law)
        super().__init__(pipeline, root / "store", instance)

        @dg.asset(key=DOWNSTREAM, deps=[TRAINING], partitions_def=pipeline.partitions)
        def full_training() -> None:
            """Stands for an expensive run that must not start on risky data."""

        self.defs = dg.Definitions(assets=[*(self.defs.assets or []), full_training], resources=self.defs.resources)

    def train(self, method: str, offset: float, spread: float) -> tuple[dg.AssetCheckEvaluation, bool]:
        """Select, write this run's metrics on the line (moved by ``offset``), train; the check's evaluation and
        whether the downstream asset ran."""
        ratio = float(self.metadata(self.run([SUBSET], method), SUBSET)["compression_ratio_zlib9"])  # type: ignore[arg-type]
        metrics = {"first_epoch_loss": 5.0 - 0.5 * ratio + spread + offset, "eval_loss": 2.0 + 0.2 * ratio}
        folder = self.root / "metrics"
        folder.mkdir(exist_ok=True)
        (folder / f"{method}_40.json").write_text(json.dumps(metrics), encoding="utf-8")
        result = self.run([TRAINING, DOWNSTREAM], method, raise_on_error=False)
        (evaluation,) = result.get_asset_check_evaluations()
        ran = any(e.asset_key == DOWNSTREAM for e in result.get_asset_materialization_events())
        return evaluation, ran

    def version(self, files: tuple[str, ...], raw_dir: Path, offset: float = 0.0) -> "Results":
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        for stale in data.iterdir():
            if stale.name not in files:
                stale.unlink()
        for name in files:
            shutil.copy(raw_dir / name, data / name)
        self.refresh()
        spreads = (-0.02, 0.0, 0.02)
        return {m: self.train(m, offset, spreads[(i + len(files)) % 3]) for i, m in enumerate(METHODS)}


def values(evaluation: dg.AssetCheckEvaluation) -> dict[str, object]:
    return {k: v.value for k, v in evaluation.metadata.items()}


Results = dict[str, tuple[dg.AssetCheckEvaluation, bool]]


@pytest.fixture(scope="module")
def three_versions(
    raw_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LawGraph, dict[int, Results]]]:
    """Three clean data versions (one, two, then three files) trained, on an instance in ``root / 'home'``.

    Shared by the tests of this module, which only read it; a test that adds versions works on a copy.
    """
    root = tmp_path_factory.mktemp("law")
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        graph = LawGraph(root, instance)
        yield graph, {n: graph.version(FILES[:n], raw_dir) for n in (1, 2, 3)}


@contextmanager
def copy_of(graph: LawGraph, root: Path) -> Iterator[LawGraph]:
    """The same pipeline, instance and storage, copied to ``root``: a test can add to it without touching others."""
    shutil.copytree(graph.root, root, dirs_exist_ok=True)
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        yield LawGraph(root, instance)


def test_clean_versions_pass_the_check(three_versions) -> None:
    _, results = three_versions
    # Versions 1 and 2 have 0 and 3 earlier runs: too few to fit, so they pass and say why.
    for n in (1, 2):
        for method, (evaluation, ran) in results[n].items():
            assert evaluation.passed and ran, method
            assert "passed without a fit" in str(values(evaluation)["status"])
    for method, (evaluation, ran) in results[3].items():
        metadata = values(evaluation)
        assert evaluation.passed and ran, (method, metadata)
        assert metadata["status"] == "within band" and abs(float(metadata["residual"])) < 0.1  # type: ignore[arg-type]
        assert metadata["band_low"] < metadata["first_epoch_loss"] < metadata["band_high"]  # type: ignore[operator]
    assert values(results[3]["zip"][0])["earlier_versions"] == 2


def test_a_run_off_the_law_fails_blocks_full_training_and_can_be_accepted_or_downgraded(
    three_versions, raw_dir: Path, tmp_path: Path
) -> None:
    with copy_of(three_versions[0], tmp_path / "copy") as graph:
        before = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance)
        # The fourth version adds a file, and its runs learn 0.5 nats worse than the law predicts.
        bad = graph.version((*FILES, "llamafactory_identity.json"), raw_dir, offset=0.5)
        # Automation does not refit the law past the failed blocking checks.
        after = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance, cursor=before.cursor)
        assert after.get_num_requested(LAW) == 0 and after.total_requested == 0
        for method, (evaluation, ran) in bad.items():
            metadata = values(evaluation)
            assert not evaluation.passed and not ran, method
            assert evaluation.severity == dg.AssetCheckSeverity.ERROR
            assert metadata["direction"] == "above"
            assert float(metadata["residual"]) == pytest.approx(0.5, abs=0.1)  # type: ignore[arg-type]
            assert "harder to learn" in str(metadata["explanation"])
            assert metadata["earlier_versions"] == 3
            assert float(metadata["predicted_performance"]) > 0  # type: ignore[arg-type]

        # A person who reviewed the version accepts it: the check passes, says so, and full training runs.
        version = str(values(bad["zip"][0])["data_version"])
        accepted = LawGraph(graph.root, graph.instance, LawSettings(accepted_versions=(version[:10],)))
        evaluation, ran = accepted.train("zip", 0.5, 0.0)
        assert evaluation.passed and ran
        assert values(evaluation)["status"] == "accepted"
        assert str(values(evaluation)["explanation"]).startswith("Accepted by a person")

        # At warning severity and not blocking, the check still fails but full training goes ahead.
        warning = LawGraph(graph.root, graph.instance, LawSettings(severity="warn", blocking=False))
        evaluation, ran = warning.train("random", 0.5, 0.0)
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert ran


def test_the_law_asset_fits_every_run_in_the_event_log(three_versions, capsys: pytest.CaptureFixture[str]) -> None:
    graph, _ = three_versions
    metadata = graph.metadata(graph.run([LAW]), LAW)
    assert metadata["n_points"] == 9 and metadata["n_data_versions"] == 3
    assert metadata["loss_form"] == "linear"
    assert float(metadata["loss_b"]) == pytest.approx(-0.5, abs=0.05)  # type: ignore[arg-type]
    assert float(metadata["loss_r_squared"]) > 0.9  # type: ignore[arg-type]
    # Every form as a table's row, the best first, rounded for reading; the exact fits are in fit.json.
    forms = metadata["loss_forms"]
    assert isinstance(forms, Table)
    assert forms.rows[0]["form"] == "linear" and len(forms.rows) == 3
    fit = json.loads(Path(str(metadata["path"])).read_text(encoding="utf-8"))["loss_vs_ratio"]
    low, high = fit["best"]["b_interval"]
    assert low < -0.5 < high
    assert forms.rows[0]["b interval"] == f"[{low:.4g}, {high:.4g}]" == metadata["loss_b_interval"]
    assert {row["form"] for row in forms.rows} == set(fit["forms"])  # every form fitted here
    for row in forms.rows:
        exact = fit["forms"][row["form"]]
        assert row["R²"] == float(f"{exact['r_squared']:.4g}") and row["CV error"] == float(f"{exact['cv_rmse']:.4g}")
        assert row["formula"] == f"L = {exact['formula']}"
    assert str(metadata["performance_formula"]).startswith("Z = ")
    assert [row["term"] for row in metadata["performance_plane"].rows] == ["intercept", "R", "L"]  # type: ignore[attr-defined]
    plots = {row["plot"]: Path(row["file"]) for row in metadata["plots"].rows}  # type: ignore[attr-defined]
    # random is among the methods: its comparison with the others is plotted, with no verdict from one seed
    assert set(plots) == {"loss_vs_ratio", "performance_vs_ratio", "data_versions", "method_comparison_plot"}
    verdicts = {row["method"]: row for row in metadata["verdict"].rows}  # type: ignore[attr-defined]
    assert set(verdicts) == {"zip", "longest"}
    verdict = verdicts["zip"]
    assert verdict["method"] == "zip" and verdict["budget"] == 40 and verdict["random sd"] is None
    assert verdict["verdict"] == "no verdict: random needs two subsets or more (random_seeds)"
    assert LawResult.from_metadata(metadata).plot_paths == {name: str(path) for name, path in plots.items()}
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in plots.values())
    assert str(metadata["loss_vs_ratio"]).startswith("![loss_vs_ratio](data:image/png;base64,")
    stored = pl.read_parquet(Path(str(metadata["path"])).parent / "points.parquet")
    assert stored.height == 9 and sorted(stored["method"].unique()) == sorted(METHODS)

    # The same fit, from the terminal.
    assert cli(["law", "--dagster-home", str(graph.root / "home")]) == 0
    report = capsys.readouterr().out
    assert "9 runs on 3 data versions, 9 in the fit" in report
    assert "L(R): linear" in report
    assert sum(line.startswith("v") and " longest " in line for line in report.splitlines()) == 3
    assert cli(["law", "--dagster-home", str(graph.root / "home"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["t"]["n_points"] == 9 and len(data["t"]["points"]) == 9


def test_points_come_from_every_materialization_and_count_a_repeat_once(three_versions) -> None:
    graph, _ = three_versions
    assert len(law_points(graph.instance, TRAINING)) == 9
    graph.train("zip", 0.0, 0.0)  # the same subset on the same data version, trained again
    points = law_points(graph.instance, TRAINING)
    assert len(points) == 9
    assert [p.timestamp for p in points] == sorted(p.timestamp for p in points)


def test_too_few_runs_are_said_plainly(raw_dir: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        graph = LawGraph(tmp_path, instance)
        (tmp_path / "data").mkdir()
        shutil.copy(raw_dir / FILES[0], tmp_path / "data")
        graph.refresh()
        graph.train("zip", 0.0, 0.0)
        graph.train("random", 0.0, 0.0)
        metadata = graph.metadata(graph.run([LAW]), LAW)
        assert metadata["status"] == "too few points to fit L(R)"
        assert "too few points: 2, at least 4 needed" in str(metadata["notes"])
        assert "loss_form" not in metadata


def test_cli_law_names_a_missing_instance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["law", "--dagster-home", str(tmp_path / "nowhere")]) == 2
    assert "no such Dagster home" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"level": 1.5}, "level"),
        ({"forms": ("cubic",)}, "forms"),
        ({"severity": "fatal"}, "severity"),
        ({"accepted_versions": ("abc",)}, "at least 7 characters"),
    ],
)
def test_bad_law_settings_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LawSettings(**fields)  # type: ignore[arg-type]


def test_the_component_configures_the_law_from_yaml_values(tmp_path: Path) -> None:
    component = SelectionPipelineComponent(
        name="t",
        paths=["data"],
        training={"backend": "file", "metrics_path": "m/{method}_{budget}.json"},
        law={"methods": ["zip", "random"], "severity": "warn", "accepted_versions": ["0123456789"]},
    )
    law = component.settings(tmp_path).law
    assert law == LawSettings(methods=("zip", "random"), severity="warn", accepted_versions=("0123456789",))
    assert law.accepts("0123456789abcdef") and not law.accepts("1123456789abcdef")
    with pytest.raises(ValueError, match="needs training runs"):
        SelectionPipelineComponent(name="t", paths=["data"], law={}).settings(tmp_path)
