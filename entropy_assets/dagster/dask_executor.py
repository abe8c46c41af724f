"""dagster-dask's executor, with each run's dask tasks named by its run: runs of one job side by side on one cluster
(the shards of a backfill, say) stay separate runs.

dagster-dask names a step's task ``<job>.<step key>``. Dask takes two tasks of one name for the same task, so when
two runs of a job (two partitions) were on a cluster at once, the second run's steps were not executed: they
reported the first run's results (seen here with shard runs of ``compression_scores``; dagster-io/dagster#21418,
closed unfixed). This executor is the library's, with the run id in every task's name: a few lines of ours where the
library should do it.

With ``cluster: local:``, dagster-dask starts a ``LocalCluster`` for the run and never closes it: its worker processes
outlived the run until the process that ran it ended (a code server, a test session). Here the run's cluster ends with
the run, and its workers are started by ``local_cluster``, which keeps them able to end their steps' log capture.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster_dask.executor import DaskExecutor
from dagster_dask.executor import dask_executor as library_executor

if TYPE_CHECKING:
    from dask.distributed import LocalCluster


class RunScopedDaskExecutor(DaskExecutor):
    """``DaskExecutor`` whose task names hold the run id: ``<job>.<run id>.<step key>``."""

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[Any]:
        with contextlib.ExitStack() as stack:
            executor: DaskExecutor = self
            if self.cluster_type == "local":
                cluster = stack.enter_context(local_cluster(**self.build_dict(plan_context.job_name)))
                executor = DaskExecutor("existing", {"address": cluster.scheduler_address})
            # The library reads the job's name once, to name the tasks: for this run, the name is the run's.
            original = type(plan_context)
            plan_context.__class__ = _run_scoped(original)
            try:
                yield from DaskExecutor.execute(executor, plan_context, execution_plan)
            finally:
                plan_context.__class__ = original


def local_cluster(**settings: Any) -> LocalCluster:
    """A dask ``LocalCluster`` (``settings`` are its own) whose worker processes do not ignore SIGTERM.

    Dagster gives SIGTERM the action that SIGINT has. Where SIGINT is ignored (a process that a script starts in the
    background, as a CI runner starts the tests), a process that has run Dagster on its main thread ignores SIGTERM
    from then on, and so does every process it starts later. A dask worker started from it ran each step's
    compute-log capture with ``tail -F`` processes that SIGTERM could not end: Dagster waited 30 s for each of the two
    (stdout and stderr) after every step, gave up, and left them running."""
    from dask.distributed import LocalCluster

    with _sigterm_default():
        return LocalCluster(**settings)


@contextlib.contextmanager
def _sigterm_default() -> Iterator[None]:
    """SIGTERM's default action in this process while the block runs, where it was ignored (on the main thread, the
    only one where Python sets a signal's action)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


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
