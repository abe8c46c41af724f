"""Executors by name: Dagster's own, or the distributed ones from the optional ``distributed`` extra.

A code location picks one with ``ENTROPY_ASSETS_EXECUTOR`` (see ``dagster_project/definitions.py``); the libraries
of the distributed executors are imported only when they are asked for, so the default install needs none of them.
"""

from __future__ import annotations

import importlib
import os

import dagster as dg

EXECUTOR_ENV = "ENTROPY_ASSETS_EXECUTOR"
"""The environment variable a code location reads its executor's name from."""

EXECUTORS: dict[str, tuple[str, str, str]] = {
    "multiprocess": ("dagster", "dagster", "multiprocess_executor"),
    "in_process": ("dagster", "dagster", "in_process_executor"),
    "dask": ("dagster_dask", "entropy_assets.dagster.dask_executor", "dask_executor"),
    "celery": ("dagster_celery", "dagster_celery", "celery_executor"),
    "k8s": ("dagster_k8s", "dagster_k8s", "k8s_job_executor"),
}
"""Each executor's name: the library it needs, and the module and attribute that define it (dask's names its tasks
by run: ``dask_executor``)."""

EXTRA_INSTALL = "pip install 'entropy-assets[distributed]'"


def executor_named(name: str) -> dg.ExecutorDefinition:
    """The executor called ``name`` (one of ``EXECUTORS``); its run config goes under ``execution: config:``."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    library, module_name, attribute = EXECUTORS[name]
    try:
        importlib.import_module(library)
    except ImportError as error:
        raise ImportError(
            f"executor {name!r} needs the {library.replace('_', '-')} library, which is not installed: {EXTRA_INSTALL}"
        ) from error
    return getattr(importlib.import_module(module_name), attribute)


def executor_from_env() -> dg.ExecutorDefinition | None:
    """The executor named by ``ENTROPY_ASSETS_EXECUTOR``; None when it is unset or empty, which leaves Dagster's
    default: multiprocess, with ``execution: config: in_process: {}`` in a run config to run in one process."""
    name = os.environ.get(EXECUTOR_ENV, "").strip()
    if not name:
        return None
    try:
        return executor_named(name)
    except ValueError as error:
        raise ValueError(f"{EXECUTOR_ENV}: {error}") from error
