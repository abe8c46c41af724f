"""Run the example Pipes trainer on two subsets of the bundled sample and print what arrived on each
``training_run`` materialization.

    .venv/bin/python examples/pipes_pipeline.py
"""

import sys
import tempfile

import dagster as dg

from entropy_assets.dagster import EntropyStorage, SelectionPipeline, TrainingSettings, selection_pipeline_defs
from entropy_assets.stages import TrainingResult


def main() -> int:
    training = TrainingSettings(backend="pipes", command=[sys.executable, "examples/pipes_trainer.py"], steps=30)
    pipeline = SelectionPipeline(
        name="pipes_demo",
        paths=["dagster_project/data/sample"],
        methods=("zip", "random"),
        budgets=(150,),
        k1=400,
        k2=60,
        k3=30,
        training=training,
    )
    with tempfile.TemporaryDirectory() as folder:
        defs = selection_pipeline_defs(pipeline, storage=EntropyStorage(base_path=folder))
        assets, resources = list(defs.assets or []), dict(defs.resources or {})
        instance = dg.DagsterInstance.ephemeral()

        def run(names: list[str], partition: str | None = None) -> dg.ExecuteInProcessResult:
            keys = [dg.AssetKey(["pipes_demo", name]) for name in names]
            return dg.materialize(
                assets, instance=instance, resources=resources, selection=keys, partition_key=partition
            )

        run(["raw_data"])
        run(["pool", "compression_scores"])
        for method in pipeline.methods:
            result = run(["selected_subset", "training_run"], method)
            event = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "training_run")
            trained = TrainingResult.from_metadata({k: v.value for k, v in event.materialization.metadata.items()})
            shown = (
                trained.backend,
                trained.steps,
                trained.tokens,
                trained.first_epoch_loss,
                trained.eval_loss,
                trained.subset_ratio_zlib9,
            )
            print(method, dict(zip(("backend", "steps", "tokens", "L", "eval_loss", "R"), shown, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
