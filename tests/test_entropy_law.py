"""Fits of the entropy law on synthetic points with known parameters, too few points, and the risk assessment."""

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from entropy_assets.compression import make_compressor, set_ratio
from entropy_assets.entropy_law import (
    FORMS,
    LawPoint,
    assess_point,
    compare_curves,
    fit_curve,
    fit_law,
    fit_plane,
    law_ratio,
)

TRUE = {"linear": (5.0, -0.4), "exponential": (6.0, -0.15), "power": (7.0, -0.5)}


def synthetic(form: str, n: int = 15, noise: float = 0.02, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(2.0, 6.0, n)
    return x, FORMS[form].function(x, *TRUE[form]) + rng.normal(0.0, noise, n)


def points_on(x: np.ndarray, y: np.ndarray, versions: int = 3) -> list[LawPoint]:
    return [
        LawPoint(
            ratio=float(r),
            loss=float(v),
            performance=3.0 - 0.1 * float(r),
            method="m",
            budget=10,
            data_version=f"v{i % versions}",
        )
        for i, (r, v) in enumerate(zip(x, y, strict=True))
    ]


@pytest.mark.parametrize("form", list(FORMS))
def test_fit_recovers_known_parameters_within_their_intervals(form: str) -> None:
    x, y = synthetic(form)
    fit = fit_curve(x, y, form)
    a, b = TRUE[form]
    assert fit.a == pytest.approx(a, rel=0.03)
    assert fit.b == pytest.approx(b, rel=0.05)
    intervals = fit.intervals()
    assert intervals["a"][0] < fit.a < intervals["a"][1] and intervals["b"][0] < fit.b < intervals["b"][1]
    assert fit.r_squared > 0.99
    assert fit.residual_std == pytest.approx(0.02, rel=0.5)


@pytest.mark.parametrize("form", list(FORMS))
def test_confidence_intervals_cover_the_true_parameters_at_about_their_level(form: str) -> None:
    covered = {"a": 0, "b": 0}
    trials = 200
    for seed in range(trials):
        intervals = fit_curve(*synthetic(form, n=10, noise=0.05, seed=seed), form).intervals()
        for name, true in zip("ab", TRUE[form], strict=True):
            covered[name] += intervals[name][0] < true < intervals[name][1]
    for name in "ab":
        assert 0.88 <= covered[name] / trials <= 0.99, (name, covered[name])


@pytest.mark.parametrize("form", list(FORMS))
def test_cross_validation_chooses_the_form_that_made_the_points(form: str) -> None:
    x, y = synthetic(form, n=20, noise=0.01, seed=1)
    comparison = compare_curves(x, y)
    assert comparison.best.form == form
    assert set(comparison.candidates) == set(FORMS)
    assert all(comparison.best.cv_rmse <= c.cv_rmse for c in comparison.candidates.values())


def test_prediction_band_covers_new_points_at_about_its_level() -> None:
    x, y = synthetic("linear", n=30, noise=0.05, seed=2)
    fit = fit_curve(x, y, "linear", level=0.9)
    rng = np.random.default_rng(3)
    new_x = rng.uniform(2.0, 6.0, 4000)
    new_y = 5.0 - 0.4 * new_x + rng.normal(0.0, 0.05, new_x.size)
    low, high = fit.prediction_band(new_x)
    coverage = float(np.mean((new_y >= low) & (new_y <= high)))
    assert 0.85 < coverage < 0.95
    # The band widens away from the data.
    inside, outside = fit.prediction_band([4.0, 12.0])
    assert outside[1] - inside[1] > outside[0] - inside[0]


def test_forms_that_need_positive_values_are_skipped_with_the_reason() -> None:
    x = np.linspace(1.0, 5.0, 8)
    comparison = compare_curves(x, 1.0 - 0.5 * x)  # crosses zero
    assert comparison.best.form == "linear"
    assert "positive" in comparison.skipped["exponential"]
    assert "positive" in comparison.skipped["power"]


def test_too_few_points_are_said_plainly_and_nothing_is_fitted() -> None:
    x, y = synthetic("linear", n=3)
    fit = fit_law(points_on(x, y))
    assert fit.loss_vs_ratio is None and fit.performance_vs_ratio is None
    assert fit.performance_vs_ratio_and_loss is None
    assert any("L(R) not fitted: too few points: 3, at least 4 needed" in note for note in fit.notes)
    with pytest.raises(ValueError, match="too few points"):
        fit_curve(x, y, "linear")
    with pytest.raises(ValueError, match="too few distinct R values: 1"):
        fit_curve([3.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0], "linear")
    with pytest.raises(ValueError, match="at least 5 needed"):
        fit_plane([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.0])


def test_plane_recovers_how_performance_depends_on_ratio_and_loss() -> None:
    rng = np.random.default_rng(4)
    ratio = rng.uniform(2.0, 4.0, 25)
    loss = rng.uniform(3.0, 4.0, 25)
    z = 1.0 + 0.3 * ratio + 0.5 * loss + rng.normal(0.0, 0.01, 25)
    plane = fit_plane(ratio, loss, z)
    assert plane.coefficients == pytest.approx((1.0, 0.3, 0.5), abs=0.05)
    for name, true in (("intercept", 1.0), ("ratio", 0.3), ("loss", 0.5)):
        low, high = plane.intervals()[name]
        assert low < true < high
    assert plane.r_squared > 0.99
    assert plane.predict(3.0, 3.5) == pytest.approx(1.0 + 0.9 + 1.75, abs=0.02)
    with pytest.raises(ValueError, match="collinear"):
        fit_plane(ratio, 2 * ratio, z)


def test_runs_without_performance_are_noted_and_left_out_of_the_z_fits() -> None:
    x, y = synthetic("linear", n=8)
    points = points_on(x, y)
    points[0] = LawPoint(points[0].ratio, points[0].loss, None, "m", 10, "v0")
    fit = fit_law(points)
    assert fit.loss_vs_ratio is not None and fit.loss_vs_ratio.best.n == 8
    assert fit.performance_vs_ratio is not None and fit.performance_vs_ratio.best.n == 7
    assert any("1 of 8 runs report no performance" in note for note in fit.notes)


def test_assessment_passes_points_on_the_curve_and_fails_points_off_it() -> None:
    x, y = synthetic("linear", n=15, noise=0.02)
    fit = fit_law(points_on(x, y))
    on = assess_point(fit, 3.0, 5.0 - 0.4 * 3.0)
    assert on.passed and on.direction == "within" and abs(on.residual) < 0.03
    assert not on.extrapolated
    assert on.predicted_performance == pytest.approx(3.0 - 0.1 * 3.0, abs=0.01)
    above = assess_point(fit, 3.0, 5.0 - 0.4 * 3.0 + 0.3)
    assert not above.passed and above.direction == "above"
    assert above.residual == pytest.approx(0.3, abs=0.03)
    assert "harder to learn" in above.explanation()
    assert above.summary().startswith("Above the band: L 4.1000 at R 3.0000; predicted 3.8")
    below = assess_point(fit, 3.0, 5.0 - 0.4 * 3.0 - 0.3)
    assert below.direction == "below" and "easier to learn" in below.explanation()
    far = assess_point(fit, 9.0, 5.0 - 0.4 * 9.0)
    assert far.extrapolated and "extrapolation" in far.explanation()


def test_assessment_needs_a_curve() -> None:
    x, y = synthetic("linear", n=2)
    with pytest.raises(ValueError, match="no L\\(R\\) curve"):
        assess_point(fit_law(points_on(x, y)), 3.0, 3.0)


def test_fit_serializes_to_plain_json_values() -> None:
    x, y = synthetic("power", n=10)
    data = fit_law(points_on(x, y)).to_dict()
    best = data["loss_vs_ratio"]["best"]
    assert best["form"] == "power" and isinstance(best["a_interval"][0], float)
    assert data["n_points"] == 10 and data["data_versions"] == 3
    assert all(math.isfinite(v) for v in data["loss_vs_ratio"]["cv_rmse"].values())


def test_law_ratio_streams_the_texts_to_the_bytes_of_the_joined_set(raw_dir: Path) -> None:
    """R is measured a text at a time through one zlib stream: the same figure as compressing the set joined, for
    real instructions, an empty set and a set holding long texts beyond zlib's window."""
    frame = pl.read_json(raw_dir / "alpaca52k_en_part01_00000-03252.json")
    texts = [f"{row['instruction']}\n{row['input']}\n{row['output']}" for row in frame.head(2000).iter_rows(named=True)]
    long_texts = ["".join(texts[i : i + 200]) for i in range(0, 2000, 200)]
    for sample in (texts, long_texts, texts[:1]):
        joined = set_ratio([text.encode("utf-8") for text in sample], make_compressor("zlib", 9))
        assert law_ratio(sample) == joined
        assert law_ratio(pl.Series(sample)) == joined
    assert law_ratio([]) == 1.0
