"""The ``entropy_law`` asset and the ``entropy_law_risk`` check: the law fitted on every training run in the event
log, and each new run's (R, L) checked against the fit of earlier data versions."""

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetCheckExecutionContext, AssetExecutionContext

from entropy_assets.entropy_law import FORMS, LawFit, LawPoint, assess_point, fit_law
from entropy_assets.plots import law_scatter_png, version_trajectory_png

from .automation import eager_past_checks
from .storage import EntropyStorage, materializations

SEVERITIES: tuple[str, ...] = ("error", "warn")

_POINT_FIELDS = ("first_epoch_loss", "subset_compression_ratio_zlib9", "method", "budget", "raw_data_version")
"""``training_run`` metadata a materialization needs to count as a point of the law."""


@dataclass(frozen=True)
class LawSettings:
    """How the law is fitted and how strictly a new data version is checked against it."""

    level: float = 0.95
    """Confidence level of parameter intervals and of the prediction band the risk check uses."""
    forms: Sequence[str] = tuple(FORMS)
    """Forms of L(R) and Z(R) to compare by leave-one-out error: linear, exponential, power."""
    methods: Sequence[str] = ()
    """Methods whose runs enter the fit and are checked; all when empty. Runs of other methods are plotted hollow."""
    severity: str = "error"
    """Severity of a failed risk check: ``error`` (with ``blocking``, stops downstream assets) or ``warn``."""
    blocking: bool = True
    """Whether a failed check (at ``error`` severity) keeps assets downstream of ``training_run`` from running."""
    accepted_versions: Sequence[str] = field(default_factory=tuple)
    """Raw data versions (or their first characters) a person has reviewed and accepted: their check passes, and
    says so."""

    def __post_init__(self) -> None:
        for name in ("forms", "methods", "accepted_versions"):  # YAML gives lists; settings compare as tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"law level must be between 0 and 1, got {self.level}")
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown or not self.forms:
            raise ValueError(f"law forms {unknown or '[]'} not in {', '.join(FORMS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"law severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        short = [v for v in self.accepted_versions if len(v) < 7]
        if short:
            raise ValueError(f"accepted_versions {short} are too short to be unambiguous: give at least 7 characters")

    def includes(self, method: str) -> bool:
        return not self.methods or method in self.methods

    def accepts(self, data_version: str) -> bool:
        return any(data_version.startswith(v) for v in self.accepted_versions)


def law_points(instance: dg.DagsterInstance, training_key: dg.AssetKey) -> list[LawPoint]:
    """Every training run recorded in the event log as a point, oldest first.

    A partition materialized again on the same data version and subset counts once, with its latest values.
    Materializations without the needed metadata (from before these fields existed) are left out.
    """
    latest: dict[tuple[str, int, str, str], LawPoint] = {}
    for record in materializations(instance, training_key):
        point = point_from_record(record)
        if point is not None:
            latest[(point.method, point.budget, point.data_version, point.subset_version)] = point
    return sorted(latest.values(), key=lambda p: p.timestamp)


def point_from_record(record: dg.EventLogRecord) -> LawPoint | None:
    """The law's point of one ``training_run`` materialization; None when its metadata lacks a needed field."""
    materialization = record.asset_materialization
    if materialization is None:
        return None
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    if any(name not in metadata for name in _POINT_FIELDS):
        return None
    performance = metadata.get("performance")
    if not isinstance(performance, int | float) or not math.isfinite(performance):
        performance = None
    return LawPoint(
        ratio=float(metadata["subset_compression_ratio_zlib9"]),  # type: ignore[arg-type]
        loss=float(metadata["first_epoch_loss"]),  # type: ignore[arg-type]
        performance=performance,
        method=str(metadata["method"]),
        budget=int(metadata["budget"]),  # type: ignore[arg-type]
        data_version=str(metadata["raw_data_version"]),
        timestamp=record.timestamp,
        run_id=record.run_id,
        subset_version=str(metadata.get("subset_version", "")),
    )


def build_law_defs(
    settings: Any, law: LawSettings, training_key: dg.AssetKey, common: dict[str, Any]
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """The ``entropy_law`` asset and the risk check on ``training_run`` (``settings`` is the ``SelectionPipeline``)."""
    name = settings.name
    # Under automation the law waits for every blocking check upstream: a refresh stops at risky data.
    law_common = {**common, "automation_condition": eager_past_checks()} if settings.automation else common

    @dg.asset(
        name="entropy_law",
        deps=[training_key],
        code_version="entropy-law-1",
        kinds={"scipy", "matplotlib"},
        description="The entropy law fitted on every training run in the event log, earlier data versions "
        "included: L as a function of R (linear, exponential and power forms compared by leave-one-out error), "
        "Z as a function of R and of (R, L), with confidence intervals, R squared and plots.",
        **law_common,
    )
    def entropy_law(context: AssetExecutionContext, entropy_storage: EntropyStorage) -> dg.MaterializeResult:
        points = law_points(context.instance, training_key)
        fitted = [law.includes(p.method) for p in points]
        fit = fit_law([p for p, used in zip(points, fitted, strict=True) if used], level=law.level, forms=law.forms)
        plots = _law_plots(points, fitted, fit)
        folder = (name, "entropy_law")
        entropy_storage.write_parquet(_points_frame(points, fitted), *folder, "points.parquet")
        path = entropy_storage.write_bytes(json.dumps(fit.to_dict(), indent=2).encode(), *folder, "fit.json")
        stored = {key: entropy_storage.write_bytes(png, *folder, f"{key}.png") for key, png in plots.items()}
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "plots": dg.MetadataValue.json({key: str(p) for key, p in stored.items()}),
                **_fit_metadata(fit, len(points)),
                "fit_methods": ", ".join(law.methods) or "all",
                "points": dg.MetadataValue.md(_points_markdown(points, fitted)),
                **{key: dg.MetadataValue.md(_embedded(png, key)) for key, png in plots.items()},
            }
        )

    @dg.asset_check(
        asset=training_key,
        name="entropy_law_risk",
        blocking=law.blocking,
        partitions_def=settings.partitions,
        description="Checks each training run's (R, L) against the prediction band of the entropy law fitted on "
        "earlier data versions. A point outside the band fails: the data update is a performance risk.",
    )
    def entropy_law_risk(context: AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return risk_check_result(context.instance, training_key, context.partition_key, law)

    return entropy_law, entropy_law_risk


def risk_check_result(
    instance: dg.DagsterInstance, training_key: dg.AssetKey, partition: str | None, law: LawSettings
) -> dg.AssetCheckResult:
    """The risk check of the latest run of ``partition``: its (R, L) against the fit of every earlier data
    version's runs."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=training_key, asset_partitions=[partition] if partition else None), limit=1
    )
    point = point_from_record(records.records[0]) if records.records else None
    if point is None:
        return dg.AssetCheckResult(passed=False, metadata={"status": "no training run with R and L to check"})
    base: dict[str, Any] = {
        "data_version": point.data_version,
        "ratio": point.ratio,
        "first_epoch_loss": point.loss,
        "method": point.method,
        "budget": point.budget,
    }
    if not law.includes(point.method):
        return dg.AssetCheckResult(passed=True, metadata={**base, "status": f"method {point.method} is not in the law"})
    earlier = [
        p for p in law_points(instance, training_key) if p.data_version != point.data_version and law.includes(p.method)
    ]
    fit = fit_law(earlier, level=law.level, forms=law.forms)
    base["earlier_points"] = len(earlier)
    base["earlier_versions"] = len({p.data_version for p in earlier})
    if fit.loss_vs_ratio is None:
        status = "passed without a fit: too few runs on earlier data versions. " + " ".join(fit.notes[:1])
        return dg.AssetCheckResult(passed=True, metadata={**base, "status": status})
    assessment = assess_point(fit, point.ratio, point.loss)
    accepted = not assessment.passed and law.accepts(point.data_version)
    explanation, summary = assessment.explanation(), assessment.summary()
    if accepted:
        explanation = f"Accepted by a person (accepted_versions). {explanation}"
        summary = f"Accepted by a person. {summary}"
    return dg.AssetCheckResult(
        passed=assessment.passed or accepted,
        severity=dg.AssetCheckSeverity.ERROR if law.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=summary,
        metadata={
            **base,
            "status": "accepted"
            if accepted
            else "within band"
            if assessment.passed
            else f"{assessment.direction} band",
            "direction": assessment.direction,
            "residual": round(assessment.residual, 6),
            "predicted_loss": round(assessment.predicted_loss, 6),
            "band_low": round(assessment.band[0], 6),
            "band_high": round(assessment.band[1], 6),
            "predicted_performance": (
                round(assessment.predicted_performance, 6)
                if assessment.predicted_performance is not None
                else float("nan")
            ),
            "extrapolated": assessment.extrapolated,
            "fit": fit.loss_vs_ratio.best.formula,
            "fit_r_squared": round(fit.loss_vs_ratio.best.r_squared, 4),
            "explanation": dg.MetadataValue.md(explanation),
        },
    )


def _law_plots(points: Sequence[LawPoint], fitted: Sequence[bool], fit: LawFit) -> dict[str, bytes]:
    if not points:
        return {}
    loss_curve = fit.loss_vs_ratio.best if fit.loss_vs_ratio else None
    with_z = [(p, used) for p, used in zip(points, fitted, strict=True) if p.performance is not None]
    plots = {
        "loss_vs_ratio": law_scatter_png(
            points,
            [p.loss for p in points],
            loss_curve,
            ylabel="first-epoch loss L",
            title="entropy law: first-epoch loss against compression ratio",
            fitted=fitted,
        ),
        "data_versions": version_trajectory_png(points),
    }
    if with_z:
        plots["performance_vs_ratio"] = law_scatter_png(
            [p for p, _ in with_z],
            [float(p.performance) for p, _ in with_z],  # type: ignore[arg-type]
            fit.performance_vs_ratio.best if fit.performance_vs_ratio else None,
            ylabel="performance Z",
            title="performance against compression ratio",
            fitted=[used for _, used in with_z],
        )
    return plots


def _fit_metadata(fit: LawFit, total_points: int) -> dict[str, Any]:
    """Headline numbers as floats and ints (Dagster charts them across materializations), details as JSON."""
    metadata: dict[str, Any] = {
        "n_points": total_points,
        "n_fitted": len(fit.points),
        "n_data_versions": len({p.data_version for p in fit.points}),
        "status": "fitted" if fit.loss_vs_ratio else "too few points to fit L(R)",
        "notes": "; ".join(fit.notes) or "none",
    }
    if fit.loss_vs_ratio is not None:
        best = fit.loss_vs_ratio.best
        intervals = best.intervals()
        metadata |= {
            "loss_form": best.form,
            "loss_formula": f"L = {best.formula}",
            "loss_r_squared": round(best.r_squared, 4),
            "loss_cv_rmse": round(best.cv_rmse, 5),
            "loss_a": best.a,
            "loss_a_interval": f"[{intervals['a'][0]:.4g}, {intervals['a'][1]:.4g}]",
            "loss_b": best.b,
            "loss_b_interval": f"[{intervals['b'][0]:.4g}, {intervals['b'][1]:.4g}]",
            "loss_forms": dg.MetadataValue.json(fit.loss_vs_ratio.to_dict()),
        }
    if fit.performance_vs_ratio is not None:
        best = fit.performance_vs_ratio.best
        metadata |= {
            "performance_formula": f"Z = {best.formula}",
            "performance_r_squared": round(best.r_squared, 4),
            "performance_forms": dg.MetadataValue.json(fit.performance_vs_ratio.to_dict()),
        }
    if fit.performance_vs_ratio_and_loss is not None:
        plane = fit.performance_vs_ratio_and_loss
        metadata |= {
            "performance_plane_formula": f"Z = {plane.formula}",
            "performance_plane_r_squared": round(plane.r_squared, 4),
            "performance_plane": dg.MetadataValue.json(plane.to_dict()),
        }
    return metadata


def _points_frame(points: Sequence[LawPoint], fitted: Sequence[bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "method": [p.method for p in points],
            "budget": [p.budget for p in points],
            "data_version": [p.data_version for p in points],
            "subset_version": [p.subset_version for p in points],
            "ratio": [p.ratio for p in points],
            "first_epoch_loss": [p.loss for p in points],
            "performance": [p.performance for p in points],
            "timestamp": [p.timestamp for p in points],
            "run_id": [p.run_id for p in points],
            "fitted": list(fitted),
        },
        schema_overrides={"performance": pl.Float64},
    )


def _points_markdown(points: Sequence[LawPoint], fitted: Sequence[bool]) -> str:
    lines = ["| method | budget | data version | R | L | Z | in fit |", "|---|---|---|---|---|---|---|"]
    for point, used in zip(points, fitted, strict=True):
        z = f"{point.performance:.4f}" if point.performance is not None else "-"
        lines.append(
            f"| {point.method} | {point.budget} | {point.data_version[:12]} | {point.ratio:.4f} | {point.loss:.4f} "
            f"| {z} | {'yes' if used else 'no'} |"
        )
    return "\n".join(lines)


def _embedded(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
