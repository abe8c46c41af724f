"""A ``training_run`` materialization killed by SIGKILL part way leaves every earlier output as it was, and run
again it resumes from its last checkpoint and ends with the losses of an uninterrupted run."""

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from entropy_assets.dagster import SelectionPipeline, TrainingSettings
from entropy_assets.stages.training import checkpoint_path
from entropy_assets.storage import Storage

from .test_pipeline import SUBSET, Graph, files, settings

TRAINING = dg.AssetKey(["t", "training_run"])
TESTS = Path(__file__).resolve().parents[1]
STEPS = 150
BUILTIN = {"context": 64, "d_model": 32, "layers": 1, "heads": 2, "batch_size": 8, "checkpoint_every": 20, "threads": 1}

CHILD = (
    "import sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from plugin.test_interrupted_training import materialize_training\n"
    "materialize_training(sys.argv[2])\n"
)


def pipeline(data_dir: Path, seeds: int = 1, steps: int = STEPS) -> SelectionPipeline:
    training = TrainingSettings(steps=steps, seeds=seeds, eval_samples=50, builtin=BUILTIN)
    return settings(data_dir, training=training)


def materialize_training(arguments: str) -> None:
    """What the child process runs: the zip partition's training run, against the test's instance and storage."""
    given = json.loads(arguments)
    with dg.DagsterInstance.from_config(given["home"]) as instance:
        trained = pipeline(Path(given["data"]), given.get("seeds", 1), given.get("steps", STEPS))
        Graph(trained, Path(given["store"]), instance).run([TRAINING], "zip")


def stored_losses(metadata: dict[str, object]) -> list[float]:
    return json.loads(Path(str(metadata["path"])).read_text(encoding="utf-8"))["step_losses"]


def test_a_training_run_killed_midway_loses_nothing_and_resumes_from_its_checkpoint(
    data_dir: Path, tmp_path: Path, kill_when: Callable[..., None]
) -> None:
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    partition = store / "t" / "training_run" / "zip_60"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        graph = Graph(pipeline(data_dir), store, instance)
        graph.refresh()
        graph.run([SUBSET], "zip")
        graph.run([SUBSET], "random")
        uninterrupted = graph.metadata(graph.run([TRAINING], "zip"), TRAINING)
        assert uninterrupted["resumed_from_step"] == 0 and uninterrupted["steps"] == STEPS
        assert not list(partition.glob("*.checkpoint.pt"))  # removed once the results were stored
        before = files(store)

        arguments = json.dumps({"home": str(home), "data": str(data_dir), "store": str(store)})
        process = subprocess.Popen([sys.executable, "-c", CHILD, str(TESTS), arguments])
        kill_when(process, lambda: bool(list(partition.glob("*.checkpoint.pt"))), within=50, what="a checkpoint")

        after = files(store)
        assert {name: after.get(name) for name in before} == before  # every earlier output, byte for byte
        (checkpoint,) = partition.glob("*.checkpoint.pt")
        left = set(after) - set(before) - {str(checkpoint.relative_to(store))}
        assert all(Path(name).name.startswith(".") and name.endswith(".tmp") for name in left), left
        for name in before:
            if name.endswith(".parquet"):
                assert pl.read_parquet(store / name).height > 0
            elif name.endswith(".json"):
                assert len(json.loads((store / name).read_text(encoding="utf-8"))["step_losses"]) == STEPS

        stale = partition / "0123456789abcdef.000000000000.checkpoint.pt"  # as a killed run on an older subset left
        stale.write_bytes(b"not a checkpoint of this subset")

        result = graph.run([TRAINING], "zip")
        resumed = graph.metadata(result, TRAINING)
        step = int(str(resumed["resumed_from_step"]))
        assert 0 < step < STEPS and step % BUILTIN["checkpoint_every"] == 0
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
        assert any(f"resumed from step {step} of {STEPS}" in message for message in messages)
        assert stored_losses(resumed) == stored_losses(uninterrupted)
        assert resumed["eval_loss"] == uninterrupted["eval_loss"]
        assert resumed["first_epoch_loss"] == uninterrupted["first_epoch_loss"]
        assert not list(partition.glob("*.checkpoint.pt"))  # its own and the stale one
        assert any("removed the stale checkpoint 0123456789abcdef" in message for message in messages)
        assert {name: files(store).get(name) for name in before} == before


def test_checkpoints_are_named_by_subset_and_settings_and_kept_locally_for_a_remote_store(tmp_path: Path) -> None:
    log = logging.getLogger("test")
    local = Storage(str(tmp_path / "store"))
    folder = ("t", "training_run", "zip_60")
    training = TrainingSettings(steps=STEPS, builtin=BUILTIN)
    path = checkpoint_path(local, folder, "v1", training, "causal_lm", log)
    assert path.parent == tmp_path / "store" / "t" / "training_run" / "zip_60"
    assert path.name.startswith("v1.") and path.name.endswith(".checkpoint.pt")
    assert checkpoint_path(local, folder, "v2", training, "causal_lm", log) != path
    assert checkpoint_path(local, folder, "v1", training.model_copy(update={"seed": 1}), "causal_lm", log) != path
    assert checkpoint_path(local, folder, "v1", training, "causal_lm_prompt_chosen", log) != path
    every = training.model_copy(update={"builtin": {**BUILTIN, "checkpoint_every": 7}})  # changes nothing computed
    assert checkpoint_path(local, folder, "v1", every, "causal_lm", log) == path

    remote = checkpoint_path(Storage("memory://bucket/x"), folder, "v1", training, "causal_lm", log)
    assert remote.is_relative_to(tempfile.gettempdir()) and remote.name == path.name


def test_a_run_at_two_training_seeds_killed_in_the_second_resumes_both(
    data_dir: Path, tmp_path: Path, kill_when: Callable[..., None]
) -> None:
    home, store, steps = tmp_path / "dagster_home", tmp_path / "store", 60
    home.mkdir()
    partition = store / "t" / "training_run" / "zip_60"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        graph = Graph(pipeline(data_dir, seeds=2, steps=steps), store, instance)
        graph.refresh()
        graph.run([SUBSET], "zip")
        uninterrupted = graph.metadata(graph.run([TRAINING], "zip"), TRAINING)
        assert uninterrupted["training_seeds"] == [0, 1] and len(uninterrupted["performance_seeds"]) == 2

        given = {"home": str(home), "data": str(data_dir), "store": str(store), "seeds": 2, "steps": steps}
        arguments = json.dumps(given)
        process = subprocess.Popen([sys.executable, "-c", CHILD, str(TESTS), arguments])
        # the first seed's finished checkpoint, and one of the second seed's
        kill_when(process, lambda: len(list(partition.glob("*.checkpoint.pt"))) == 2, within=80, what="two checkpoints")

        resumed = graph.metadata(graph.run([TRAINING], "zip"), TRAINING)
        assert resumed["resumed_from_step"] == steps  # the first seed had finished: nothing left to train
        assert resumed["performance_seeds"] == uninterrupted["performance_seeds"]
        assert resumed["first_epoch_loss_seeds"] == uninterrupted["first_epoch_loss_seeds"]
        assert not list(partition.glob("*.checkpoint.pt"))
