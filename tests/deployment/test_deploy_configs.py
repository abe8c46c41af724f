"""The files in ``deploy/`` against the schemas of the executors and instance storage they configure.

These are what is checked of the Kubernetes and Celery setups here (no cluster or broker runs in the tests); the dask
and PostgreSQL files are also run for real in test_dask.py and test_postgres.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from .jobs import selection_job

pytest.importorskip("dagster_k8s", reason="needs the distributed extra: pip install 'entropy-assets[distributed]'")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(*parts: str) -> dict[str, Any]:
    return yaml.safe_load(DEPLOY.joinpath(*parts).read_text(encoding="utf-8"))


def job_on(executor: str, tmp_path: Path) -> dg.JobDefinition:
    return selection_job(str(tmp_path / "data"), str(tmp_path / "store"), executor)


@pytest.mark.parametrize(
    ("executor", "parts"),
    [
        ("dask", ("dask", "run_config.yaml")),
        ("dask", ("dask", "existing_cluster.yaml")),
        ("k8s", ("k8s", "run_config.yaml")),
        ("celery", ("celery", "run_config.yaml")),
    ],
)
def test_run_configs_validate_against_their_executors(executor: str, parts: tuple[str, ...], tmp_path: Path) -> None:
    job = job_on(executor, tmp_path)
    assert job.executor_def.name == executor
    dg.validate_run_config(job, load(*parts))


@pytest.mark.parametrize(
    ("executor", "broken"),
    [
        ("dask", {"cluster": {"local": {}, "existing": {"address": "tcp://x:8786"}}}),
        ("k8s", {"max_concurrent": "four"}),
        ("celery", {"brokers": "pyamqp://guest@localhost//"}),
    ],
)
def test_a_broken_run_config_is_rejected(executor: str, broken: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job_on(executor, tmp_path), {"execution": {"config": broken}})


def test_per_step_k8s_settings_name_steps_of_the_bundled_code_location() -> None:
    from dagster_project.definitions import defs

    steps = {key.to_python_identifier() for key in defs().resolve_asset_graph().get_all_asset_keys()}
    named = set(load("k8s", "run_config.yaml")["execution"]["config"]["per_step_k8s_config"])
    assert named and named <= steps, f"{sorted(named - steps)} are not steps of the code location ({sorted(steps)})"


def test_the_helm_values_load_the_code_location_with_the_k8s_executor() -> None:
    (deployment,) = load("k8s", "values.yaml")["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("--module-name") + 1]
    assert module == "dagster_project.definitions"
    assert {"name": "ENTROPY_ASSETS_EXECUTOR", "value": "k8s"} in deployment["env"]


def test_celery_workers_and_runs_name_the_same_broker_and_backend() -> None:
    from dagster_celery.cli import get_validated_config

    worker = get_validated_config(str(DEPLOY / "celery" / "celery.yaml"))
    run = load("celery", "run_config.yaml")["execution"]["config"]
    assert (worker["broker"], worker["backend"]) == (run["broker"], run["backend"])


def test_the_postgres_instance_file_is_a_valid_instance_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "postgres" / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    storage = config["storage"]["postgres"]
    for name, value in [("USERNAME", "dagster"), ("PASSWORD", "s3cret"), ("HOST", "db"), ("PORT", "5433")]:
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    monkeypatch.setenv("DAGSTER_PG_DB", "runs")
    processed = process_config(DagsterPostgresStorage.config_type(), storage)
    assert processed.success, processed.errors
    assert pg_url_from_config(processed.value) == "postgresql+psycopg2://dagster:s3cret@db:5433/runs"
