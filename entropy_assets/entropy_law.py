"""The entropy law as numbers: fits of first-epoch loss L and performance Z against compression ratio R, and the
risk check of a new data version against the fit of earlier ones.

Yin et al. (2024) observe that, across training subsets, L moves with the subset's compression ratio R and that
performance Z follows R and L. This module fits those relations on a handful of points (one per training run),
compares functional forms by leave-one-out error, and reports parameters with confidence intervals, R squared and
a prediction band. It knows nothing of Dagster: points come in as plain values.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from entropy_assets.compression import SET_SEPARATOR


def law_ratio(texts: Iterable[str]) -> float:
    """R, the compression ratio of a set of texts as the law measures it: zlib level 9 over the texts joined one
    per line (raw bytes / compressed bytes; lower is less redundant). A subset's R in metadata, the command line
    and the fits is always this.

    The texts go through one zlib stream a text at a time (the same bytes as ``set_ratio`` compressing them
    joined): memory holds one text, not the set twice over (a set of the longest samples at ten million is
    hundreds of MB)."""
    stream = zlib.compressobj(LAW_LEVEL)
    raw = compressed = 0
    for text in texts:
        data = text.encode("utf-8") + SET_SEPARATOR
        raw += len(data)
        compressed += len(stream.compress(data))
    if not raw:
        return 1.0
    return raw / (compressed + len(stream.flush()))


LAW_LEVEL = 9
"""zlib's level for R, as the Entropy Law paper measured it."""


MIN_CURVE_POINTS = 4
"""A two-parameter curve needs this many points: every leave-one-out fold then keeps a residual degree of freedom."""

MIN_PLANE_POINTS = 5
"""Z = c0 + c1·R + c2·L needs this many points, for the same reason."""


@dataclass(frozen=True)
class LawPoint:
    """One training run: its subset's ratio R, first-epoch loss L and performance Z, and where it came from."""

    ratio: float
    loss: float
    performance: float | None
    method: str
    budget: int
    data_version: str
    timestamp: float = 0.0
    run_id: str = ""
    subset_version: str = ""
    losses: tuple[float, ...] = ()
    """L at each training seed, when the subset was trained at several (``loss`` is their mean)."""
    performances: tuple[float, ...] = ()
    """Z at each training seed, when the subset was trained at several (``performance`` is their mean)."""
    eval_version: str = ""
    """The evaluation set's content: Z compares across runs of the same one."""

    @property
    def label(self) -> str:
        """``method/budget@version`` with the data version shortened, for plots and tables."""
        return f"{self.method}/{self.budget}@{self.data_version[:7]}"


def data_versions(points: Sequence[LawPoint]) -> list[str]:
    """The points' data versions in the order of their first run: v1, v2, ... in plots and reports."""
    first: dict[str, float] = {}
    for point in points:
        first[point.data_version] = min(first.get(point.data_version, point.timestamp), point.timestamp)
    return sorted(first, key=lambda version: (first[version], version))


@dataclass(frozen=True)
class _Form:
    name: str
    formula: str
    function: Callable[..., np.ndarray]
    gradient: Callable[[np.ndarray, float, float], np.ndarray]
    """d f / d (a, b) at x, one row per x: for the prediction band."""
    needs_positive: tuple[bool, bool]
    """Whether x and y must be positive (the form's starting values come from a log-linear fit)."""


def _linear(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a + b * x


def _exponential(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * np.exp(b * x)


def _power(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * np.power(x, b)


FORMS: dict[str, _Form] = {
    "linear": _Form(
        "linear", "{a} + {b}·R", _linear, lambda x, a, b: np.column_stack([np.ones_like(x), x]), (False, False)
    ),
    "exponential": _Form(
        "exponential",
        "{a}·exp({b}·R)",
        _exponential,
        lambda x, a, b: np.column_stack([np.exp(b * x), a * x * np.exp(b * x)]),
        (False, True),
    ),
    "power": _Form(
        "power",
        "{a}·R^{b}",
        _power,
        lambda x, a, b: np.column_stack([np.power(x, b), a * np.power(x, b) * np.log(x)]),
        (True, True),
    ),
}
"""The candidate forms of y = f(R), each with two parameters a and b."""


@dataclass(frozen=True)
class CurveFit:
    """y = f(x) in one form, fitted by least squares, with what a reviewer asks of a fit."""

    form: str
    a: float
    b: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    n: int
    residual_std: float
    r_squared: float
    cv_rmse: float
    """Leave-one-out root mean squared error: how well the form predicts a point it was not fitted on."""
    level: float
    x_range: tuple[float, float]

    @property
    def dof(self) -> int:
        return self.n - 2

    @property
    def formula(self) -> str:
        return FORMS[self.form].formula.format(a=f"{self.a:.4g}", b=f"{self.b:.4g}")

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Confidence intervals of a and b at the fit's level (t distribution, ``n - 2`` degrees of freedom)."""
        quantile = _t_quantile(self.level, self.dof)
        errors = np.sqrt(np.maximum(np.diag(np.asarray(self.covariance)), 0.0))
        return {
            name: (float(value - quantile * error), float(value + quantile * error))
            for name, value, error in zip(("a", "b"), (self.a, self.b), errors, strict=True)
        }

    def predict(self, x: float | np.ndarray) -> np.ndarray:
        return np.asarray(FORMS[self.form].function(np.asarray(x, dtype=np.float64), self.a, self.b))

    def prediction_band(self, x: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a new observation at ``x`` falls with probability ``level``: the fit's own uncertainty (delta
        method) plus the scatter of points around it."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        gradient = FORMS[self.form].gradient(x, self.a, self.b)
        fit_variance = np.einsum("ij,jk,ik->i", gradient, np.asarray(self.covariance), gradient)
        spread = _t_quantile(self.level, self.dof) * np.sqrt(np.maximum(fit_variance, 0.0) + self.residual_std**2)
        centre = self.predict(x)
        return centre - spread, centre + spread

    def to_dict(self) -> dict[str, Any]:
        intervals = self.intervals()
        return {
            "form": self.form,
            "formula": self.formula,
            "a": self.a,
            "b": self.b,
            "a_interval": list(intervals["a"]),
            "b_interval": list(intervals["b"]),
            "r_squared": self.r_squared,
            "cv_rmse": self.cv_rmse,
            "residual_std": self.residual_std,
            "n": self.n,
            "level": self.level,
            "x_range": list(self.x_range),
        }


@dataclass(frozen=True)
class CurveComparison:
    """Every form that could be fitted, and the one with the lowest leave-one-out error (simpler forms win ties)."""

    best: CurveFit
    candidates: dict[str, CurveFit]
    skipped: dict[str, str] = field(default_factory=dict)
    """Forms that could not be fitted, with the reason (e.g. a non-positive value for a log-linear start)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best.to_dict(),
            "forms": {name: fit.to_dict() for name, fit in self.candidates.items()},
            "cv_rmse": {name: fit.cv_rmse for name, fit in self.candidates.items()},
            "r_squared": {name: fit.r_squared for name, fit in self.candidates.items()},
            "skipped": dict(self.skipped),
        }


@dataclass(frozen=True)
class PlaneFit:
    """Z = c0 + c1·R + c2·L by ordinary least squares."""

    coefficients: tuple[float, float, float]
    covariance: tuple[tuple[float, ...], ...]
    n: int
    residual_std: float
    r_squared: float
    cv_rmse: float
    level: float

    def predict(self, ratio: float, loss: float) -> float:
        c0, c1, c2 = self.coefficients
        return c0 + c1 * ratio + c2 * loss

    def intervals(self) -> dict[str, tuple[float, float]]:
        quantile = _t_quantile(self.level, self.n - 3)
        errors = np.sqrt(np.maximum(np.diag(np.asarray(self.covariance)), 0.0))
        names = ("intercept", "ratio", "loss")
        return {
            n: (c - quantile * e, c + quantile * e) for n, c, e in zip(names, self.coefficients, errors, strict=True)
        }

    @property
    def formula(self) -> str:
        c0, c1, c2 = self.coefficients
        return f"{c0:.4g} + {c1:.4g}·R + {c2:.4g}·L"

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": self.formula,
            "coefficients": dict(zip(("intercept", "ratio", "loss"), self.coefficients, strict=True)),
            "intervals": {k: list(v) for k, v in self.intervals().items()},
            "r_squared": self.r_squared,
            "cv_rmse": self.cv_rmse,
            "residual_std": self.residual_std,
            "n": self.n,
            "level": self.level,
        }


@dataclass(frozen=True)
class LawFit:
    """The entropy law fitted on a set of runs: L(R), Z(R) and Z(R, L), each ``None`` with a note when the points
    do not allow it."""

    points: tuple[LawPoint, ...]
    loss_vs_ratio: CurveComparison | None
    performance_vs_ratio: CurveComparison | None
    performance_vs_ratio_and_loss: PlaneFit | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def maybe(fit: Any) -> Any:
            return None if fit is None else fit.to_dict()

        return {
            "n_points": len(self.points),
            "data_versions": len({p.data_version for p in self.points}),
            "loss_vs_ratio": maybe(self.loss_vs_ratio),
            "performance_vs_ratio": maybe(self.performance_vs_ratio),
            "performance_vs_ratio_and_loss": maybe(self.performance_vs_ratio_and_loss),
            "notes": list(self.notes),
        }


def fit_curve(x: Sequence[float], y: Sequence[float], form: str, *, level: float = 0.95) -> CurveFit:
    """y = f(x) in ``form`` (linear, exponential or power) by least squares, with its leave-one-out error.

    Raises ``ValueError`` when there are too few points or distinct x values, or the form does not apply to the
    data (exponential and power forms need positive y; power also positive x).
    """
    xs, ys = _validated(x, y, form, level)
    a, b, covariance = _least_squares(xs, ys, form)
    residuals = ys - FORMS[form].function(xs, a, b)
    total = float(np.sum((ys - ys.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(residuals**2)) / total if total > 0 else 1.0
    return CurveFit(
        form=form,
        a=a,
        b=b,
        covariance=covariance,
        n=len(xs),
        residual_std=math.sqrt(float(np.sum(residuals**2)) / (len(xs) - 2)),
        r_squared=r_squared,
        cv_rmse=_leave_one_out_rmse(
            xs, ys, lambda tx, ty, px: FORMS[form].function(px, *_least_squares(tx, ty, form)[:2])
        ),
        level=level,
        x_range=(float(xs.min()), float(xs.max())),
    )


def compare_curves(
    x: Sequence[float], y: Sequence[float], *, forms: Sequence[str] = tuple(FORMS), level: float = 0.95
) -> CurveComparison:
    """Every applicable form fitted; the best is the lowest leave-one-out error (earlier forms win ties)."""
    if len(x) < MIN_CURVE_POINTS:
        raise ValueError(f"too few points: {len(x)}, at least {MIN_CURVE_POINTS} needed")
    candidates: dict[str, CurveFit] = {}
    skipped: dict[str, str] = {}
    for form in forms:
        try:
            candidates[form] = fit_curve(x, y, form, level=level)
        except ValueError as exc:
            skipped[form] = str(exc)
    if not candidates:
        raise ValueError("no form could be fitted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    best = min(candidates.values(), key=lambda fit: (round(fit.cv_rmse, 12), forms.index(fit.form)))
    return CurveComparison(best=best, candidates=candidates, skipped=skipped)


def fit_plane(ratio: Sequence[float], loss: Sequence[float], z: Sequence[float], *, level: float = 0.95) -> PlaneFit:
    """Z = c0 + c1·R + c2·L by ordinary least squares, with confidence intervals and leave-one-out error."""
    r, losses, zs = (np.asarray(v, dtype=np.float64) for v in (ratio, loss, z))
    if not len(r) == len(losses) == len(zs):
        raise ValueError(f"R, L and Z must have equal lengths, got {len(r)}, {len(losses)}, {len(zs)}")
    if len(r) < MIN_PLANE_POINTS:
        raise ValueError(f"too few points to fit Z(R, L): {len(r)}, at least {MIN_PLANE_POINTS} needed")
    design = np.column_stack([np.ones_like(r), r, losses])
    if np.linalg.matrix_rank(design) < 3:
        raise ValueError("R and L are collinear (or constant) across the points: Z(R, L) is not identifiable")
    coefficients, *_ = np.linalg.lstsq(design, zs, rcond=None)
    residuals = zs - design @ coefficients
    dof = len(r) - 3
    variance = float(np.sum(residuals**2)) / dof
    covariance = variance * np.linalg.inv(design.T @ design)
    total = float(np.sum((zs - zs.mean()) ** 2))

    def predict(train: np.ndarray, target: np.ndarray, at: np.ndarray) -> np.ndarray:
        fitted, *_ = np.linalg.lstsq(design[train], target, rcond=None)
        return design[at] @ fitted

    return PlaneFit(
        coefficients=(float(coefficients[0]), float(coefficients[1]), float(coefficients[2])),
        covariance=tuple(tuple(float(v) for v in row) for row in covariance),
        n=len(r),
        residual_std=math.sqrt(variance),
        r_squared=1.0 - float(np.sum(residuals**2)) / total if total > 0 else 1.0,
        cv_rmse=_leave_one_out_rmse(np.arange(len(r)), zs, lambda ti, ty, pi: predict(ti, ty, pi)),
        level=level,
    )


def fit_law(points: Sequence[LawPoint], *, level: float = 0.95, forms: Sequence[str] = tuple(FORMS)) -> LawFit:
    """L(R), Z(R) and Z(R, L) over ``points``; each fit that the points cannot support is ``None`` with a note
    that says why (too few points, a single R value, no performance scores)."""
    notes: list[str] = []
    ratios = [p.ratio for p in points]
    loss_fit = _comparison_or_note(ratios, [p.loss for p in points], "L(R)", forms, level, notes)
    scored = [p for p in points if p.performance is not None and math.isfinite(p.performance)]
    if len(scored) < len(points):
        notes.append(f"{len(points) - len(scored)} of {len(points)} runs report no performance Z; Z fits use the rest")
    z = [float(p.performance) for p in scored]  # type: ignore[arg-type]
    performance_fit = _comparison_or_note([p.ratio for p in scored], z, "Z(R)", forms, level, notes)
    plane: PlaneFit | None = None
    try:
        plane = fit_plane([p.ratio for p in scored], [p.loss for p in scored], z, level=level)
    except ValueError as exc:
        notes.append(f"Z(R, L) not fitted: {exc}")
    return LawFit(tuple(points), loss_fit, performance_fit, plane, tuple(notes))


Direction = Literal["above", "below", "within"]


@dataclass(frozen=True)
class RiskAssessment:
    """Where a new run's (R, L) falls against the prediction band of a fit from earlier data versions."""

    ratio: float
    loss: float
    predicted_loss: float
    band: tuple[float, float]
    residual: float
    """L minus the predicted L: positive when the run found its data harder to learn than its R predicts."""
    direction: Direction
    predicted_performance: float | None
    extrapolated: bool
    """R lies outside the range of R the fit was made on: the band is less trustworthy there."""
    formula: str

    @property
    def passed(self) -> bool:
        return self.direction == "within"

    def summary(self) -> str:
        """One line: where the point is against the band, in numbers."""
        return (
            f"{self.direction.capitalize()} the band: L {self.loss:.4f} at R {self.ratio:.4f}; "
            f"predicted {self.predicted_loss:.4f} [{self.band[0]:.4f}, {self.band[1]:.4f}], "
            f"residual {self.residual:+.4f}" + (" (extrapolated)" if self.extrapolated else "")
        )

    def explanation(self) -> str:
        """Which way the point is off, what that suggests about the data, and what the paper reports."""
        where = (
            f"L = {self.loss:.4f} at R = {self.ratio:.4f}; the fit of earlier data versions ({self.formula}) "
            f"predicts L = {self.predicted_loss:.4f}, band [{self.band[0]:.4f}, {self.band[1]:.4f}]."
        )
        extrapolation = (
            " R lies outside the range the fit was made on, so the prediction is an extrapolation."
            if self.extrapolated
            else ""
        )
        if self.direction == "within":
            return f"Within the band: the new data behaves like earlier versions. {where}{extrapolation}"
        if self.direction == "above":
            meaning = (
                "The run found this data harder to learn than its compression ratio predicts: either L is raised "
                "(noisy or mutually inconsistent samples) or R is inflated by redundancy the model does not profit "
                "from in one epoch (a block of near-duplicates does this in examples/data_update_risk.py)."
            )
        else:
            meaning = (
                "The run found this data easier to learn than its compression ratio predicts: either R is lowered "
                "by content that does not compress but teaches little (random strings, encoded blobs, character "
                "noise; ZIP is drawn to such samples), or L is lowered by repetition the compressor's window "
                "missed or by leaked evaluation data."
            )
        meaning += (
            " The paper finds performance falls as R rises and uses a data version's departure from the (R, L) "
            "relation of earlier versions to flag a risky update before full training."
        )
        return f"{self.direction.capitalize()} the band. {meaning} {where}{extrapolation}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "loss": self.loss,
            "predicted_loss": self.predicted_loss,
            "band": list(self.band),
            "residual": self.residual,
            "direction": self.direction,
            "predicted_performance": self.predicted_performance,
            "extrapolated": self.extrapolated,
            "passed": self.passed,
        }


def assess_point(fit: LawFit, ratio: float, loss: float) -> RiskAssessment:
    """A new run's (R, L) against ``fit`` (made on earlier data versions): inside or outside its prediction band,
    the residual, and the performance Z the fit predicts (from Z(R, L) when fitted, else Z(R))."""
    if fit.loss_vs_ratio is None:
        raise ValueError("the fit has no L(R) curve: " + "; ".join(fit.notes))
    curve = fit.loss_vs_ratio.best
    predicted = float(curve.predict(ratio)[()])
    low, high = (float(v[0]) for v in curve.prediction_band(ratio))
    direction: Direction = "above" if loss > high else "below" if loss < low else "within"
    performance: float | None = None
    if fit.performance_vs_ratio_and_loss is not None:
        performance = fit.performance_vs_ratio_and_loss.predict(ratio, loss)
    elif fit.performance_vs_ratio is not None:
        performance = float(fit.performance_vs_ratio.best.predict(ratio)[()])
    return RiskAssessment(
        ratio=ratio,
        loss=loss,
        predicted_loss=predicted,
        band=(low, high),
        residual=loss - predicted,
        direction=direction,
        predicted_performance=performance,
        extrapolated=not curve.x_range[0] <= ratio <= curve.x_range[1],
        formula=curve.formula,
    )


def _comparison_or_note(
    x: Sequence[float], y: Sequence[float], what: str, forms: Sequence[str], level: float, notes: list[str]
) -> CurveComparison | None:
    try:
        return compare_curves(x, y, forms=forms, level=level)
    except ValueError as exc:
        notes.append(f"{what} not fitted: {exc}")
        return None


def _validated(x: Sequence[float], y: Sequence[float], form: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {', '.join(FORMS)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be equal-length sequences, got {xs.shape} and {ys.shape}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be finite numbers")
    if len(xs) < MIN_CURVE_POINTS:
        raise ValueError(f"too few points: {len(xs)}, at least {MIN_CURVE_POINTS} needed")
    if len(np.unique(xs)) < 3:
        raise ValueError(f"too few distinct R values: {len(np.unique(xs))}, at least 3 needed")
    positive_x, positive_y = FORMS[form].needs_positive
    if positive_x and np.any(xs <= 0):
        raise ValueError(f"the {form} form needs positive R")
    if positive_y and np.any(ys <= 0):
        raise ValueError(f"the {form} form needs positive values")
    return xs, ys


def _least_squares(x: np.ndarray, y: np.ndarray, form: str) -> tuple[float, float, Any]:
    """Parameters and covariance of ``form``, started from its log-linear (or linear) fit."""
    if form == "linear":
        slope, intercept = np.polyfit(x, y, 1)
        start = (intercept, slope)
    elif form == "exponential":
        slope, intercept = np.polyfit(x, np.log(y), 1)
        start = (math.exp(intercept), slope)
    else:
        slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
        start = (math.exp(intercept), slope)
    from scipy import optimize  # imported when a fit is made: loading scipy takes about a second

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", optimize.OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow while exploring; a bad fit is caught below
            parameters, covariance = optimize.curve_fit(FORMS[form].function, x, y, p0=start, maxfev=20000)
    except (RuntimeError, optimize.OptimizeWarning) as exc:
        raise ValueError(f"the {form} fit did not converge: {exc}") from exc
    if not np.all(np.isfinite(covariance)):
        raise ValueError(f"the {form} fit has no finite covariance (the points do not constrain it)")
    rows = tuple(tuple(float(v) for v in row) for row in covariance)
    return float(parameters[0]), float(parameters[1]), rows


def _leave_one_out_rmse(
    x: np.ndarray, y: np.ndarray, fit_and_predict: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
) -> float:
    """RMSE of predicting each point from a fit on all the others; infinite when a fold cannot be fitted."""
    errors = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        try:
            predicted = fit_and_predict(x[keep], y[keep], x[i : i + 1])
        except (ValueError, np.linalg.LinAlgError):
            return math.inf
        errors.append(float(predicted[0]) - float(y[i]))
    return math.sqrt(float(np.mean(np.square(errors))))


def _t_quantile(level: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf((1.0 + level) / 2.0, max(dof, 1)))
