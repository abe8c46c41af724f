"""Training runs to the entropy law: the fit over every run recorded, with its plots and table, and the risk check
of a run's (R, L) against the fit of earlier data versions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from entropy_assets.comparison import compare_methods
from entropy_assets.entropy_law import CurveComparison, LawFit, LawPoint, PlaneFit, assess_point, fit_law
from entropy_assets.plots import law_scatter_png, method_comparison_png, version_trajectory_png

from .law_result import Assessment, CurveSummary, FitSummary, LawResult, RiskResult
from .metadata import for_reading
from .settings import LawSettings
from .workspace import Workspace


def latest_points(points: Iterable[LawPoint]) -> list[LawPoint]:
    """One point per partition, data version and subset (the latest of repeated runs), oldest first."""
    latest: dict[tuple[str, int, str, str], LawPoint] = {}
    for point in sorted(points, key=lambda p: p.timestamp):
        latest[(point.method, point.budget, point.data_version, point.subset_version)] = point
    return sorted(latest.values(), key=lambda p: p.timestamp)


def fit_entropy_law(workspace: Workspace, points: Sequence[LawPoint], law: LawSettings) -> LawResult:
    """The law fitted on the runs of ``law``'s methods (every run is plotted; the others hollow): the points as
    parquet, the fit as JSON, and the plots, under ``<pipeline>/entropy_law/``."""
    fitted = [law.includes(p.method) for p in points]
    fit = fit_law([p for p, used in zip(points, fitted, strict=True) if used], level=law.level, forms=law.forms)
    plots = _plots(points, fitted, fit)
    comparison = compare_methods(points, level=law.level)
    if comparison.random:
        plots["method_comparison_plot"] = method_comparison_png(comparison)
    storage, folder = workspace.storage, workspace.folder("entropy_law")
    storage.write_parquet(_points_frame(points, fitted), *folder, "points.parquet")
    path = storage.write_bytes(json.dumps(fit.to_dict(), indent=2).encode(), *folder, "fit.json")
    stored = {key: storage.write_bytes(png, *folder, f"{key}.png") for key, png in plots.items()}
    return LawResult(
        path=str(path),
        plot_paths={key: str(p) for key, p in stored.items()},
        n_points=len(points),
        n_fitted=len(fit.points),
        n_data_versions=len({p.data_version for p in fit.points}),
        notes="; ".join(fit.notes) or "none",
        fit_methods=tuple(law.methods),
        points_table=_points_markdown(points, fitted),
        comparison=comparison.to_dict() if comparison.random else {},
        comparison_rows=tuple(comparison.rows()) if comparison.random else (),
        verdict_rows=tuple(comparison.verdict_rows()) if comparison.random else (),
        plots=plots,
        **_summaries(fit),
    )


def assess_risk(point: LawPoint | None, points: Sequence[LawPoint], law: LawSettings) -> RiskResult:
    """``point`` (a run) against the law fitted on ``points`` of every other data version: a point outside the
    prediction band fails, unless a person accepted its data version."""
    if point is None:
        return RiskResult(passed=False, status="no training run with R and L to check")
    if not law.includes(point.method):
        return RiskResult(passed=True, status=f"method {point.method} is not in the law", point=point)
    earlier = [p for p in points if p.data_version != point.data_version and law.includes(p.method)]
    fit = fit_law(earlier, level=law.level, forms=law.forms)
    counts = {"earlier_points": len(earlier), "earlier_versions": len({p.data_version for p in earlier})}
    if fit.loss_vs_ratio is None:
        status = "passed without a fit: too few runs on earlier data versions. " + " ".join(fit.notes[:1])
        return RiskResult(passed=True, status=status, point=point, **counts)
    assessment = assess_point(fit, point.ratio, point.loss)
    accepted = not assessment.passed and law.accepts(point.data_version)
    explanation, summary = assessment.explanation(), assessment.summary()
    if accepted:
        explanation = f"Accepted by a person (accepted_versions). {explanation}"
        summary = f"Accepted by a person. {summary}"
    status = "accepted" if accepted else "within band" if assessment.passed else f"{assessment.direction} band"
    predicted = assessment.predicted_performance
    return RiskResult(
        passed=assessment.passed or accepted,
        status=status,
        point=point,
        **counts,
        assessment=Assessment(
            direction=assessment.direction,
            residual=round(assessment.residual, 6),
            predicted_loss=round(assessment.predicted_loss, 6),
            band_low=round(assessment.band[0], 6),
            band_high=round(assessment.band[1], 6),
            predicted_performance=round(predicted, 6) if predicted is not None else None,
            extrapolated=assessment.extrapolated,
            fit=fit.loss_vs_ratio.best.formula,
            fit_r_squared=round(fit.loss_vs_ratio.best.r_squared, 4),
            explanation=explanation,
        ),
        summary=summary,
        severity=law.severity,
    )


def _summaries(fit: LawFit) -> dict[str, CurveSummary | FitSummary | None]:
    """The headline of each relation the points allowed, with its table."""
    loss = performance = plane = None
    if fit.loss_vs_ratio is not None:
        best = fit.loss_vs_ratio.best
        intervals = best.intervals()
        loss = CurveSummary(
            form=best.form,
            formula=f"L = {best.formula}",
            r_squared=round(best.r_squared, 4),
            cv_rmse=round(best.cv_rmse, 5),
            a=best.a,
            a_interval=_interval(intervals["a"]),
            b=best.b,
            b_interval=_interval(intervals["b"]),
            forms=_form_rows(fit.loss_vs_ratio, "L"),
        )
    if fit.performance_vs_ratio is not None:
        best = fit.performance_vs_ratio.best
        rows = _form_rows(fit.performance_vs_ratio, "Z")
        performance = FitSummary(f"Z = {best.formula}", round(best.r_squared, 4), rows)
    if fit.performance_vs_ratio_and_loss is not None:
        found = fit.performance_vs_ratio_and_loss
        plane = FitSummary(f"Z = {found.formula}", round(found.r_squared, 4), _plane_rows(found))
    return {"loss": loss, "performance": performance, "plane": plane}


def _form_rows(comparison: CurveComparison, name: str) -> tuple[dict[str, Any], ...]:
    """Every form of a curve as a table's rows (``FORM_COLUMNS``), the best first, then by leave-one-out error;
    forms that could not be fitted last, with the reason."""
    fits = sorted(comparison.candidates.values(), key=lambda fit: (fit is not comparison.best, fit.cv_rmse))
    rows = [
        {
            "form": fit.form,
            "formula": f"{name} = {fit.formula}",
            "R²": for_reading(fit.r_squared),
            "CV error": for_reading(fit.cv_rmse),
            "b interval": _interval(fit.intervals()["b"]),
        }
        for fit in fits
    ]
    rows += [
        {"form": form, "formula": f"not fitted: {why}", "R²": None, "CV error": None, "b interval": ""}
        for form, why in comparison.skipped.items()
    ]
    return tuple(rows)


def _plane_rows(fit: PlaneFit) -> tuple[dict[str, Any], ...]:
    """Z(R, L)'s coefficients with their intervals as a table's rows (``PLANE_COLUMNS``)."""
    intervals = fit.intervals()
    return tuple(
        {"term": term, "coefficient": for_reading(value), "interval": _interval(intervals[name])}
        for term, name, value in zip(
            ("intercept", "R", "L"), ("intercept", "ratio", "loss"), fit.coefficients, strict=True
        )
    )


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.4g}, {bounds[1]:.4g}]"


def _plots(points: Sequence[LawPoint], fitted: Sequence[bool], fit: LawFit) -> dict[str, bytes]:
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
