"""The selection graph on an instance whose storage is PostgreSQL, configured by ``deploy/postgres/dagster.yaml``.

The server comes from ``ENTROPY_ASSETS_TEST_POSTGRES`` (``postgresql://user[:password]@host:port``, what
``scripts/postgres_server.sh start`` prints); each test run gets its own database, dropped afterwards. Without the
variable the tests skip, unless ``ENTROPY_ASSETS_REQUIRE_POSTGRES=1`` (as in ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import polars as pl
import pytest

from entropy_assets.dagster.events import latest, materializations
from entropy_assets.stages import PoolResult, ScoresResult, SubsetResult

from .jobs import BUDGET, POOL, RAW_FILES, SCORES, SUBSET, copy_raw_files, reconstructable_selection_job, run_selection

SERVER_ENV = "ENTROPY_ASSETS_TEST_POSTGRES"
REQUIRE_ENV = "ENTROPY_ASSETS_REQUIRE_POSTGRES"
INSTANCE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "dagster.yaml"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the test server, with the ``DAGSTER_PG_*`` variables that the instance file reads set to
    it; yields its name, and drops it afterwards."""
    url = os.environ.get(SERVER_ENV)
    if not url:
        _unavailable(f'{SERVER_ENV} is not set; start a server with: eval "$(bash scripts/postgres_server.sh start)"')
    try:
        import dagster_postgres  # noqa: F401
        import psycopg2
    except ImportError:
        _unavailable("dagster-postgres is not installed: pip install 'entropy-assets[distributed]'")
    server = urlsplit(url)
    connect = {"host": server.hostname, "port": server.port or 5432, "user": server.username or "postgres"}
    connect["password"] = server.password or ""
    try:
        admin = psycopg2.connect(dbname="postgres", **connect)
    except psycopg2.OperationalError as error:
        _unavailable(f"cannot connect to the PostgreSQL server at {url}: {error}")
    admin.autocommit = True
    name = f"entropy_assets_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    for variable, value in [
        ("DAGSTER_PG_USERNAME", connect["user"]),
        ("DAGSTER_PG_PASSWORD", connect["password"]),
        ("DAGSTER_PG_HOST", connect["host"]),
        ("DAGSTER_PG_PORT", str(connect["port"])),
        ("DAGSTER_PG_DB", name),
    ]:
        monkeypatch.setenv(variable, str(value))
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def instance(database: str, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """The instance that ``deploy/postgres/dagster.yaml`` describes, in a fresh DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_the_instance_file_puts_runs_and_events_in_postgres(instance: dg.DagsterInstance, database: str) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    # The scheme that SQLAlchemy 2.1 needs for psycopg2 reaches the engine.
    assert instance.event_log_storage.postgres_url.startswith("postgresql+psycopg2://")
    assert instance.event_log_storage.postgres_url.endswith(f"/{database}")


def test_the_graph_runs_against_postgres_storage(
    instance: dg.DagsterInstance, database: str, raw_dir: Path, tmp_path: Path
) -> None:
    import psycopg2

    data = copy_raw_files(raw_dir, tmp_path / "data")
    store = tmp_path / "store"
    # Dagster's default executor: each step in its own process, each opening the instance from the same file.
    job = reconstructable_selection_job(str(data), str(store), "multiprocess")
    run_selection(job, instance, [POOL, SCORES])
    for method in ("zip", "random"):
        run_selection(job, instance, [SUBSET], method)

    # Read back through the instance, with the helpers the downstream assets use.
    pool, scores = latest(instance, POOL, PoolResult), latest(instance, SCORES, ScoresResult)
    assert pool is not None and scores is not None and scores.pool_version == pool.version
    total = sum(RAW_FILES.values())
    assert pool.records_kept == total
    assert pl.read_parquet(store / scores.file).height == total
    for method in ("zip", "random"):
        (record,) = materializations(instance, SUBSET, method)
        subset = latest(instance, SUBSET, SubsetResult, method)
        assert subset is not None and subset.version == record.asset_materialization.metadata["version"].value
        assert pl.read_parquet(store / subset.file).height == BUDGET
    assert len(instance.get_runs()) == 3

    # And the rows are in PostgreSQL's own tables.
    connection = psycopg2.connect(
        dbname=database,
        host=os.environ["DAGSTER_PG_HOST"],
        port=int(os.environ["DAGSTER_PG_PORT"]),
        user=os.environ["DAGSTER_PG_USERNAME"],
        password=os.environ["DAGSTER_PG_PASSWORD"],
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT asset_key, partition, count(*) FROM event_logs "
                "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY asset_key, partition"
            )
            rows = {(key, partition): count for key, partition, count in cursor.fetchall()}
            cursor.execute("SELECT count(*) FROM runs")
            (runs,) = cursor.fetchone()
    finally:
        connection.close()
    assert rows == {
        (POOL.to_string(), None): 1,
        (SCORES.to_string(), None): 1,
        (SUBSET.to_string(), "zip"): 1,
        (SUBSET.to_string(), "random"): 1,
    }
    assert runs == 3
