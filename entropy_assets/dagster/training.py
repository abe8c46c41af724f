"""The ``training_run`` asset: one training run per selected subset, by the built-in trainer, a transformers
model, an external trainer through Dagster Pipes, or metrics of a run made elsewhere (a JSON or CSV file)."""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from entropy_assets.stages import SubsetResult, TrainingSettings, train_on_subset

from .events import materialized, required
from .previews import deliberate_previews
from .settings import SelectionPipeline
from .storage import EntropyStorage


def training_asset(
    settings: SelectionPipeline, training: TrainingSettings, common: dict[str, Any]
) -> dg.AssetsDefinition:
    """The ``training_run`` asset of a pipeline, partitioned as its subsets are."""
    subset_key = settings.key("selected_subset")

    @dg.asset(
        name="training_run",
        deps=[subset_key],
        partitions_def=settings.partitions,
        code_version="training-run-1",
        kinds={"pytorch"} if training.backend in ("builtin", "transformers") else {"python"},
        description=f"A training run on each selected subset ({training.backend} backend, {training.steps} steps "
        "each): per-step loss, first-epoch loss L, evaluation loss and the performance Z used by the entropy law.",
        **common,
    )
    def training_run(
        context: AssetExecutionContext,
        entropy_storage: EntropyStorage,
        pipes_subprocess_client: dg.PipesSubprocessClient,
    ) -> dg.MaterializeResult:
        method, budget = settings.partition(context.partition_key)
        subset = required(context.instance, subset_key, SubsetResult, context.partition_key)

        @deliberate_previews()
        def launch(command: Sequence[str], extras: Mapping[str, Any]) -> Sequence[Any]:
            return pipes_subprocess_client.run(
                context=context, command=list(command), extras=dict(extras)
            ).get_custom_messages()

        workspace = entropy_storage.workspace(settings.name, context.log)
        result = train_on_subset(
            workspace,
            subset,
            method,
            budget,
            training,
            run_id=context.run.run_id,
            launch=launch,
            columns=settings.source_columns,
        )
        return materialized(result)

    return training_run
