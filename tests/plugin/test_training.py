"""``training_run``: the built-in trainer, an external trainer through Pipes, and metrics from files."""

import json
import math
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from entropy_assets.dagster import TrainingSettings
from entropy_assets.stages import holdout_mask

from .test_pipeline import SUBSET, Graph, settings

TRAINING = dg.AssetKey(["t", "training_run"])
REPO = Path(__file__).resolve().parents[2]
TINY = {"context": 64, "d_model": 32, "layers": 1, "heads": 2, "batch_size": 8}


def trained(data_dir: Path, tmp_path: Path, training: TrainingSettings, method: str = "zip") -> tuple[Graph, object]:
    """Materialize everything up to one training run; returns the graph and the run's result."""
    instance = dg.DagsterInstance.ephemeral()
    graph = Graph(settings(data_dir, training=training), tmp_path / "store", instance)
    graph.refresh()
    graph.run([SUBSET], method)
    return graph, graph.run([TRAINING], method, raise_on_error=False)


def test_builtin_training_records_l_z_and_the_subset_it_trained_on(data_dir: Path, tmp_path: Path) -> None:
    training = TrainingSettings(steps=20, eval_samples=50, builtin=TINY)
    graph, result = trained(data_dir, tmp_path, training)
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert run["steps"] == 20 and run["tokens"] == 20 * 8 * 64
    assert math.isfinite(run["first_epoch_loss"]) and run["first_epoch_loss"] < math.log(257)
    assert run["performance"] == run["eval_loss"] and run["eval_loss"] < math.log(257)
    subset = graph.metadata(graph.run([SUBSET], "zip"), SUBSET)
    assert run["subset_compression_ratio_zlib9"] == subset["compression_ratio_zlib9"]
    assert run["subset_samples"] == 60 and run["raw_data_version"] != "None"
    stored = json.loads(Path(str(run["path"])).read_text(encoding="utf-8"))
    assert len(stored["step_losses"]) == 20 and stored["first_epoch_loss"] == run["first_epoch_loss"]
    assert Path(str(run["path"])).with_suffix(".loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_held_out_evaluation_samples_are_never_selected(data_dir: Path, tmp_path: Path) -> None:
    training = TrainingSettings(steps=5, eval_samples=300, builtin=TINY)
    graph, result = trained(data_dir, tmp_path, training, method="dedup")
    run = graph.metadata(result, TRAINING)  # type: ignore[arg-type]
    pool = pl.read_parquet(tmp_path / "store" / str(run["pool_file"]))
    held_out = set(pool.filter(holdout_mask(pool, 300))["content_hash"])
    chosen = pl.read_parquet(tmp_path / "store" / str(run["subset_file"]))
    assert Path(str(run["subset_file"])).parent.name == "dedup_60"
    assert len(held_out) == 300
    assert held_out.isdisjoint(chosen["content_hash"])


def test_holdout_keeps_every_copy_of_a_held_out_sample(raw_dir: Path) -> None:
    from entropy_assets.sources import load_pool

    pool = load_pool(raw_dir / "llamafactory_glaive_toolcall_en_demo.json").frame  # 35 exact duplicates
    mask = holdout_mask(pool, 100)
    held = pool.filter(mask)["content_hash"]
    assert held.n_unique() == 100
    assert not set(held).intersection(pool.filter(~mask)["content_hash"])


def test_metrics_from_pipes_arrive_intact(data_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "tests" / "data" / "fixed_metrics_trainer.py")]
    training = TrainingSettings(backend="pipes", command=command, score="mmlu", eval_samples=50)
    graph, result = trained(data_dir, tmp_path, training)
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert run["first_epoch_loss"] == 2.3125 and run["eval_loss"] == 2.1 and run["steps"] == 4
    assert run["performance"] == 0.41 and run["scores"] == {"mmlu": 0.41}
    stored = json.loads(Path(str(run["path"])).read_text(encoding="utf-8"))
    assert stored["step_losses"] == [3.0, 2.5, 2.0, 1.75] and stored["seconds"] == 1.5


def test_the_example_pipes_trainer_runs(data_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "examples" / "pipes_trainer.py")]
    graph, result = trained(data_dir, tmp_path, TrainingSettings(backend="pipes", command=command, steps=8))
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert run["steps"] == 8 and run["backend"] == "pipes"
    assert run["first_epoch_loss"] < math.log(257) + 0.1 and math.isfinite(run["eval_loss"])


def test_a_crashing_trainer_fails_the_run_with_its_error_and_records_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENTROPY_EXAMPLE_CRASH", "1")
    command = [sys.executable, str(REPO / "examples" / "pipes_trainer.py")]
    _graph, result = trained(data_dir, tmp_path, TrainingSettings(backend="pipes", command=command, steps=8))
    assert not result.success
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == TRAINING]
    assert not (tmp_path / "store" / "t" / "training_run").exists()
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    shown = str(failure.event_specific_data.error) + capfd.readouterr().err
    assert "asked to crash" in shown


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_metrics_of_a_run_made_elsewhere_arrive_intact(data_dir: Path, tmp_path: Path, suffix: str) -> None:
    metrics = tmp_path / f"zip_60{suffix}"
    if suffix == ".json":
        metrics.write_text(
            json.dumps({"first_epoch_loss": 2.75, "eval_loss": 2.5, "step_losses": [3.0, 2.5], "tokens": 4096}),
            encoding="utf-8",
        )
    else:
        metrics.write_text("step,loss,eval_loss\n1,3.0,\n2,2.5,2.5\n", encoding="utf-8")
    pattern = str(tmp_path / ("{method}_{budget}" + suffix))
    graph, result = trained(data_dir, tmp_path, TrainingSettings(backend="file", metrics_path=pattern))
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert (run["first_epoch_loss"], run["eval_loss"], run["steps"]) == (2.75, 2.5, 2)


def test_a_missing_metrics_file_fails_the_run(data_dir: Path, tmp_path: Path) -> None:
    pattern = str(tmp_path / "nowhere_{method}.json")
    _graph, result = trained(data_dir, tmp_path, TrainingSettings(backend="file", metrics_path=pattern))
    assert not result.success
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == TRAINING]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "slurm"}, "backend"),
        ({"backend": "pipes"}, "command"),
        ({"backend": "file"}, "metrics_path"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_training_settings_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingSettings(**fields)  # type: ignore[arg-type]


def test_preference_pairs_train_on_prompt_plus_chosen(raw_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dpo"
    folder.mkdir()
    records = json.loads((raw_dir / "llamafactory_dpo_en_demo.json").read_text(encoding="utf-8"))
    (folder / "pairs.json").write_text(json.dumps(records), encoding="utf-8")
    graph, result = trained(folder, tmp_path, TrainingSettings(steps=10, eval_samples=40, builtin=TINY))
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert run["loss_kind"] == "causal_lm_prompt_chosen" and run["steps"] == 10


def test_the_transformers_backend_trains_a_local_model(data_dir: Path, tmp_path: Path, tiny_model: Path) -> None:
    settings_ = {"context": 64, "batch_size": 4, "learning_rate": 5e-3, "device": "cpu"}
    training = TrainingSettings(
        backend="transformers", model=str(tiny_model), steps=6, eval_samples=40, transformers=settings_
    )
    graph, result = trained(data_dir, tmp_path, training)
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert run["backend"] == "transformers" and run["steps"] == 6 and run["tokens"] == 6 * 4 * 64
    assert math.isfinite(run["first_epoch_loss"]) and math.isfinite(run["eval_loss"])


def test_preference_pairs_train_with_dpo_on_the_transformers_backend(
    raw_dir: Path, tmp_path: Path, tiny_model: Path
) -> None:
    pytest.importorskip("trl")
    folder = tmp_path / "dpo"
    folder.mkdir()
    records = json.loads((raw_dir / "llamafactory_dpo_en_demo.json").read_text(encoding="utf-8"))[:120]
    (folder / "pairs.json").write_text(json.dumps(records), encoding="utf-8")
    overrides = {"context": 128, "batch_size": 4, "device": "cpu"}
    training = TrainingSettings(
        backend="transformers", model=str(tiny_model), steps=4, eval_samples=8, transformers=overrides
    )
    graph, result = trained(folder, tmp_path, training)
    assert result.success
    run = graph.metadata(result, TRAINING)
    assert run["loss_kind"] == "dpo" and run["steps"] == 4
    assert run["first_epoch_loss"] == pytest.approx(math.log(2), abs=0.05)
