"""What fitting the entropy law and checking a run against it hand on (``law.fit_entropy_law``,
``law.assess_risk``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from entropy_assets.entropy_law import LawPoint

from .metadata import (
    FilePath,
    Markdown,
    MetadataReader,
    Table,
    embedded_png,
    finite_or_none,
    markdown_image,
    nan_if_none,
)

COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("budget", "int"),
    ("method", "string"),
    ("R", "float"),
    ("L", "float"),
    ("Z", "float"),
    ("runs", "int"),
    ("difference", "float"),
    ("interval", "string"),
    ("verdict", "string"),
)
"""The columns of the method comparison's table (``MethodComparison.rows``)."""

VERDICT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "string"),
    ("budget", "int"),
    ("Z", "float"),
    ("random Z", "float"),
    ("random sd", "float"),
    ("distance (sd)", "float"),
    ("verdict", "string"),
    ("runs", "int"),
)
"""The columns of the verdict's table (``MethodComparison.verdict_rows``)."""

FORM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("form", "string"),
    ("formula", "string"),
    ("R²", "float"),
    ("CV error", "float"),
    ("b interval", "string"),
)
"""The columns of a curve's table of forms: each form fitted, best first (lowest leave-one-out error), rounded for
reading; the exact fits are in the law's ``fit.json``."""

PLOT_COLUMNS: tuple[tuple[str, str], ...] = (("plot", "string"), ("file", "string"))
"""The columns of the table of the law's stored plots: each plot's metadata key and its PNG file."""


PLANE_COLUMNS: tuple[tuple[str, str], ...] = (("term", "string"), ("coefficient", "float"), ("interval", "string"))
"""The columns of the table of Z(R, L): each coefficient with its interval, rounded for reading."""


@dataclass(frozen=True)
class CurveSummary:
    """The best form of L(R): its parameters with their intervals (as shown), R squared, leave-one-out error, and
    every form as the table shows it (``FORM_COLUMNS``)."""

    form: str
    formula: str
    r_squared: float
    cv_rmse: float
    a: float
    a_interval: str
    b: float
    b_interval: str
    forms: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class FitSummary:
    """A fitted relation of Z: its formula, R squared, and its table (``FORM_COLUMNS`` for Z(R), ``PLANE_COLUMNS``
    for Z(R, L))."""

    formula: str
    r_squared: float
    rows: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class LawResult:
    """The entropy law fitted on every training run recorded: L(R), Z(R) and Z(R, L) where the points allow,
    which methods entered the fit, the table of points and the plots."""

    path: str
    """The fit, as JSON."""
    plot_paths: Mapping[str, str]
    n_points: int
    n_fitted: int
    n_data_versions: int
    notes: str
    fit_methods: tuple[str, ...]
    """The methods whose runs entered the fit; every method when empty."""
    points_table: str
    loss: CurveSummary | None = None
    performance: FitSummary | None = None
    plane: FitSummary | None = None
    comparison: Mapping[str, Any] = field(default_factory=dict)
    """Each method's R, L and Z per budget against random's, with the difference's interval and the verdict
    (``MethodComparison.to_dict``); empty without random runs."""
    comparison_rows: tuple[Mapping[str, Any], ...] = ()
    """The comparison as the UI's table shows it (``MethodComparison.rows``)."""
    verdict_rows: tuple[Mapping[str, Any], ...] = ()
    """Whether each method beats random, a row each (``MethodComparison.verdict_rows``); empty without random runs
    (and for a law recorded before the verdict was a table)."""
    plots: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> str:
        return "fitted" if self.loss is not None else "too few points to fit L(R)"

    def to_metadata(self) -> dict[str, Any]:
        """The plots first (where a reader looks), headline numbers as floats and ints (Dagster charts them across
        materializations), every form, the verdict and the comparison as tables."""
        metadata: dict[str, Any] = {
            **{name: markdown_image(png, name) for name, png in self.plots.items()},
            "path": FilePath(self.path),
            "plots": Table(PLOT_COLUMNS, tuple({"plot": n, "file": f} for n, f in self.plot_paths.items())),
            "n_points": self.n_points,
            "n_fitted": self.n_fitted,
            "n_data_versions": self.n_data_versions,
            "status": self.status,
            "notes": self.notes,
        }
        if self.comparison_rows:
            metadata["verdict"] = Table(VERDICT_COLUMNS, self.verdict_rows)
        if self.loss is not None:
            metadata |= {
                "loss_form": self.loss.form,
                "loss_formula": self.loss.formula,
                "loss_r_squared": self.loss.r_squared,
                "loss_cv_rmse": self.loss.cv_rmse,
                "loss_a": self.loss.a,
                "loss_a_interval": self.loss.a_interval,
                "loss_b": self.loss.b,
                "loss_b_interval": self.loss.b_interval,
                "loss_forms": Table(FORM_COLUMNS, self.loss.forms),
            }
        if self.performance is not None:
            metadata |= {
                "performance_formula": self.performance.formula,
                "performance_r_squared": self.performance.r_squared,
                "performance_forms": Table(FORM_COLUMNS, self.performance.rows),
            }
        if self.plane is not None:
            metadata |= {
                "performance_plane_formula": self.plane.formula,
                "performance_plane_r_squared": self.plane.r_squared,
                "performance_plane": Table(PLANE_COLUMNS, self.plane.rows),
            }
        return {
            **metadata,
            "fit_methods": ", ".join(self.fit_methods) or "all",
            "points": Markdown(self.points_table),
            **(self._comparison_metadata() if self.comparison_rows else {}),
        }

    def _comparison_metadata(self) -> dict[str, Any]:
        return {
            "method_comparison": Table(COMPARISON_COLUMNS, self.comparison_rows),
            "method_comparison_rows": [dict(row) for row in self.comparison_rows],
            "method_comparison_details": dict(self.comparison),
        }

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> Self:
        read = MetadataReader(values, "entropy_law")
        loss = performance = plane = None
        if read.has("loss_form"):
            loss = CurveSummary(
                form=read.text("loss_form"),
                formula=read.text("loss_formula"),
                r_squared=read.number("loss_r_squared"),
                cv_rmse=read.number("loss_cv_rmse"),
                a=read.number("loss_a"),
                a_interval=read.text("loss_a_interval"),
                b=read.number("loss_b"),
                b_interval=read.text("loss_b_interval"),
                forms=_rows(read, "loss_forms"),
            )
        if read.has("performance_formula"):
            performance = FitSummary(
                read.text("performance_formula"), read.number("performance_r_squared"), _rows(read, "performance_forms")
            )
        if read.has("performance_plane_formula"):
            plane = FitSummary(
                read.text("performance_plane_formula"),
                read.number("performance_plane_r_squared"),
                _rows(read, "performance_plane"),
            )
        if read.holds("plots", dict):  # a law recorded before the plots' files were a table
            plot_paths = read.mapping("plots")
        else:
            plot_paths = {row["plot"]: row["file"] for row in read.table("plots").rows}
        methods = read.text("fit_methods")
        return cls(
            path=read.text("path"),
            plot_paths=plot_paths,
            n_points=read.integer("n_points"),
            n_fitted=read.integer("n_fitted"),
            n_data_versions=read.integer("n_data_versions"),
            notes=read.text("notes"),
            fit_methods=() if methods == "all" else tuple(m.strip() for m in methods.split(",")),
            points_table=read.text("points"),
            loss=loss,
            performance=performance,
            plane=plane,
            comparison=read.mapping("method_comparison_details") if read.has("method_comparison_details") else {},
            comparison_rows=tuple(read.sequence("method_comparison_rows")),
            verdict_rows=_rows(read, "verdict"),
            plots={name: embedded_png(read.text(name)) for name in plot_paths},
        )


def _rows(read: MetadataReader, key: str) -> tuple[Mapping[str, Any], ...]:
    """A table's rows; none where the key is absent or holds the JSON of a law recorded before it was a table (its
    figures are in that law's ``fit.json``, its verdict in ``method_comparison_details``)."""
    return read.table(key).rows if read.holds(key, Table) else ()


@dataclass(frozen=True)
class Assessment:
    """Where a run's (R, L) fell against the law fitted on earlier data versions."""

    direction: str
    residual: float
    predicted_loss: float
    band_low: float
    band_high: float
    predicted_performance: float | None
    extrapolated: bool
    fit: str
    fit_r_squared: float
    explanation: str


@dataclass(frozen=True)
class RiskResult:
    """The risk check of a training run: whether its (R, L) lies within the prediction band of the law fitted on
    earlier data versions, and why it passed or failed."""

    passed: bool
    status: str
    point: LawPoint | None = None
    earlier_points: int | None = None
    earlier_versions: int | None = None
    assessment: Assessment | None = None
    summary: str | None = None
    """One line for the check's description, when the run was assessed."""
    severity: str = "error"
    """How a failure counts: ``error`` or ``warn`` (the law's setting, for an assessed run)."""

    def to_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if self.point is not None:
            metadata |= {
                "data_version": self.point.data_version,
                "ratio": self.point.ratio,
                "first_epoch_loss": self.point.loss,
                "method": self.point.method,
                "budget": self.point.budget,
            }
        if self.earlier_points is not None:
            metadata |= {"earlier_points": self.earlier_points, "earlier_versions": self.earlier_versions}
        metadata["status"] = self.status
        if self.assessment is not None:
            found = self.assessment
            metadata |= {
                "direction": found.direction,
                "residual": found.residual,
                "predicted_loss": found.predicted_loss,
                "band_low": found.band_low,
                "band_high": found.band_high,
                "predicted_performance": nan_if_none(found.predicted_performance),
                "extrapolated": found.extrapolated,
                "fit": found.fit,
                "fit_r_squared": found.fit_r_squared,
                "explanation": Markdown(found.explanation),
            }
        return metadata

    @classmethod
    def from_metadata(
        cls, values: Mapping[str, Any], *, passed: bool, summary: str | None = None, severity: str = "error"
    ) -> Self:
        """The result of a check evaluation: its metadata, and what Dagster keeps apart from it (whether it passed,
        its description and its severity)."""
        read = MetadataReader(values, "entropy_law_risk")
        point = assessment = None
        if read.has("method"):
            point = LawPoint(
                ratio=read.number("ratio"),
                loss=read.number("first_epoch_loss"),
                performance=None,
                method=read.text("method"),
                budget=read.integer("budget"),
                data_version=read.text("data_version"),
            )
        if read.has("direction"):
            assessment = Assessment(
                direction=read.text("direction"),
                residual=read.number("residual"),
                predicted_loss=read.number("predicted_loss"),
                band_low=read.number("band_low"),
                band_high=read.number("band_high"),
                predicted_performance=finite_or_none(read.number("predicted_performance")),
                extrapolated=bool(read.get("extrapolated", bool)),
                fit=read.text("fit"),
                fit_r_squared=read.number("fit_r_squared"),
                explanation=read.text("explanation"),
            )
        earlier = read.has("earlier_points")
        return cls(
            passed=passed,
            status=read.text("status"),
            point=point,
            earlier_points=read.integer("earlier_points") if earlier else None,
            earlier_versions=read.integer("earlier_versions") if earlier else None,
            assessment=assessment,
            summary=summary,
            severity=severity,
        )
