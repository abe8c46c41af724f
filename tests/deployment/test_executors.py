"""Executors by name, and the code location's choice of executor from ``ENTROPY_ASSETS_EXECUTOR``."""

from __future__ import annotations

import sys

import pytest

from entropy_assets.dagster import EXECUTORS, executor_from_env, executor_named


def test_every_named_executor_is_the_one_its_library_defines() -> None:
    pytest.importorskip("dagster_k8s", reason="needs the distributed extra")
    assert {name: executor_named(name).name for name in EXECUTORS} == {
        "multiprocess": "multiprocess",
        "in_process": "in_process",
        "dask": "dask",
        "celery": "celery",
        "k8s": "k8s",
    }


def test_an_unknown_executor_is_rejected_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown executor 'spark'; expected one of multiprocess, in_process, dask"):
        executor_named("spark")


def test_a_missing_library_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dagster_dask", None)  # makes the import fail as if it were not installed
    with pytest.raises(ImportError, match=r"dagster-dask .* pip install 'entropy-assets\[distributed\]'"):
        executor_named("dask")


def test_the_code_location_uses_the_executor_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.definitions import defs

    monkeypatch.delenv("ENTROPY_ASSETS_EXECUTOR", raising=False)
    assert executor_from_env() is None  # Dagster's default: multiprocess, or in_process by run config
    monkeypatch.setenv("ENTROPY_ASSETS_EXECUTOR", "in_process")
    jobs = defs().get_repository_def().get_all_jobs()
    assert jobs and {job.executor_def.name for job in jobs} == {"in_process"}
    monkeypatch.setenv("ENTROPY_ASSETS_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="ENTROPY_ASSETS_EXECUTOR: unknown executor 'threads'"):
        executor_from_env()
