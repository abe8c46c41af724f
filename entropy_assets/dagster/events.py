"""Typed results in and out of the event log: a step's result becomes a materialization's metadata, and the
latest (or every) materialization of an asset is read back as a result. Downstream assets read their inputs from
here, so that what they read is exactly what the event log says was made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

import dagster as dg

from entropy_assets.stages import ColumnSchema, FilePath, Markdown, Table


class Result(Protocol):
    def to_metadata(self) -> dict[str, Any]: ...

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self: ...


R = TypeVar("R", bound=Result)


def dagster_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """A result's metadata as Dagster shows it: paths as paths, markdown as markdown, tables as tables, a file's
    columns as its column schema, the rest as it is (numbers are charted across materializations, dicts shown as
    JSON)."""
    shown: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, FilePath):
            value = dg.MetadataValue.path(str(value))
        elif isinstance(value, Markdown):
            value = dg.MetadataValue.md(str(value))
        elif isinstance(value, Table):
            value = dagster_table(value)
        elif isinstance(value, ColumnSchema):
            value = dg.MetadataValue.table_schema(dagster_schema(value))
        shown[name] = value
    return shown


def dagster_table(table: Table) -> dg.TableMetadataValue:
    """A result's table as Dagster's table metadata, with its column schema."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in table.columns])
    return dg.MetadataValue.table(records=[dg.TableRecord(dict(row)) for row in table.rows], schema=schema)


def dagster_schema(columns: ColumnSchema) -> dg.TableSchema:
    """A stored file's columns as Dagster's table schema."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name, kind, description=about or None) for name, kind, about in columns.columns]
    )


def plain_value(value: Any) -> Any:
    """A metadata value read from the event log as a result reads it: a table as the ``Table`` it was written from,
    a column schema as its ``ColumnSchema``, anything else as its plain value."""
    if isinstance(value, dg.TableMetadataValue):
        schema = value.schema
        return Table(
            tuple((column.name, column.type) for column in schema.columns),
            tuple(dict(record.data) for record in value.records),
        )
    if isinstance(value, dg.TableSchemaMetadataValue):
        return ColumnSchema(
            tuple((column.name, column.type, column.description or "") for column in value.schema.columns)
        )
    return value.value if isinstance(value, dg.MetadataValue) else value


def materialized(
    result: Result, *, data_version: str | None = None, checks: Sequence[dg.AssetCheckResult] = ()
) -> dg.MaterializeResult:
    """What an asset returns for ``result``; ``data_version`` makes downstream assets stale only when it changes;
    ``checks`` are the results of the asset's own checks (``check_specs``), evaluated in the same step."""
    return dg.MaterializeResult(
        metadata=dagster_metadata(result.to_metadata()),
        data_version=dg.DataVersion(data_version) if data_version is not None else None,
        check_results=list(checks) or None,
    )


def latest(
    instance: dg.DagsterInstance, key: dg.AssetKey, result_type: type[R], partition: str | None = None
) -> R | None:
    """The result of the latest materialization of ``key`` (and ``partition``); None when there is none."""
    found = latest_record(instance, key, result_type, partition)
    return found[1] if found is not None else None


def latest_record(
    instance: dg.DagsterInstance, key: dg.AssetKey, result_type: type[R], partition: str | None = None
) -> tuple[Any, R] | None:
    """The latest materialization record of ``key`` (and ``partition``) with its result; None when there is none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return records[0], result_type.from_metadata(metadata_values(records[0]))


def required(instance: dg.DagsterInstance, key: dg.AssetKey, result_type: type[R], partition: str | None = None) -> R:
    """``latest``, or an error that says to materialize it first."""
    found = latest(instance, key, result_type, partition)
    if found is None:
        where = f" partition {partition}" if partition else ""
        raise ValueError(f"{key.to_user_string()}{where} has not been materialized yet; materialize it first")
    return found


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> list[Any]:
    """Every materialization record of ``key`` (and ``partition``), oldest first."""
    records, cursor = [], None
    partitions = [partition] if partition else None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=1000, cursor=cursor, ascending=True
        )
        records.extend(r for r in result.records if r.asset_materialization is not None)
        if not result.has_more:
            return records
        cursor = result.cursor


def all_results(
    instance: dg.DagsterInstance, key: dg.AssetKey, result_type: type[R], partition: str | None = None
) -> list[tuple[Any, R]]:
    """Every materialization of ``key`` (and ``partition``) with its result, oldest first."""
    return [
        (record, result_type.from_metadata(metadata_values(record)))
        for record in materializations(instance, key, partition)
    ]


def observed(instance: dg.DagsterInstance, key: dg.AssetKey, result_type: type[R], data_version: str) -> R | None:
    """The result of an observation of ``key`` that saw ``data_version`` (among its last 1,000); None if none did."""
    for record in instance.fetch_observations(key, limit=1000).records:
        observation = record.asset_observation
        if observation is not None and observation.data_version == data_version:
            return result_type.from_metadata({name: plain_value(value) for name, value in observation.metadata.items()})
    return None


def metadata_values(record: Any) -> dict[str, Any]:
    """A materialization record's metadata, as plain values (``plain_value``)."""
    return {name: plain_value(value) for name, value in record.asset_materialization.metadata.items()}
