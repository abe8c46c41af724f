"""dagster-dask's executor, with each run's dask tasks named by its run: runs of one job side by side on one cluster
(the shards of a backfill, say) stay separate runs.

dagster-dask names a step's task ``<job>.<step key>``. Dask takes two tasks of one name for the same task, so when
two runs of a job (two partitions) were on a cluster at once, the second run's steps were not executed: they
reported the first run's results (seen here with shard runs of ``compression_scores``; dagster-io/dagster#21418,
closed unfixed). This executor is the library's, with the run id in every task's name: a few lines of ours where the
library should do it.

With ``cluster: local:``, dagster-dask starts a ``LocalCluster`` for the run and never closes it: its worker processes
outlived the run until the process that ran it ended (a code server, a test session). Here the run's cluster ends with
the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any

import dagster as dg
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster_dask.executor import DaskExecutor
from dagster_dask.executor import dask_executor as library_executor


class RunScopedDaskExecutor(DaskExecutor):
    """``DaskExecutor`` whose task names hold the run id: ``<job>.<run id>.<step key>``."""

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[Any]:
        with contextlib.ExitStack() as stack:
            executor: DaskExecutor = self
            if self.cluster_type == "local":
                from dask.distributed import LocalCluster

                cluster = stack.enter_context(LocalCluster(**self.build_dict(plan_context.job_name)))
                executor = DaskExecutor("existing", {"address": cluster.scheduler_address})
            # The library reads the job's name once, to name the tasks: for this run, the name is the run's.
            original = type(plan_context)
            plan_context.__class__ = _run_scoped(original)
            try:
                yield from DaskExecutor.execute(executor, plan_context, execution_plan)
            finally:
                plan_context.__class__ = original


@cache
def _run_scoped(context_type: type[PlanOrchestrationContext]) -> type[PlanOrchestrationContext]:
    class RunScoped(context_type):  # type: ignore[misc, valid-type]
        @property
        def job_name(self) -> str:
            return f"{self.dagster_run.job_name}.{self.dagster_run.run_id}"

    return RunScoped


def _create(init_context: dg.InitExecutorContext) -> RunScopedDaskExecutor:
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return RunScopedDaskExecutor(cluster_type, cluster_configuration)


dask_executor = dg.ExecutorDefinition(
    name="dask",
    config_schema=library_executor.config_schema,
    requirements=library_executor.get_requirements,
    executor_creation_fn=_create,
    description="dagster-dask's executor, its tasks named by run so that runs of one job can share a cluster.",
)
"""The ``dask`` executor: the library's configuration (``cluster: existing: address:``, ``cluster: local:``, ...)."""
