"""matplotlib figures, rendered to small PNGs for reports and asset metadata.

matplotlib is imported when the first figure is drawn, not with this module: a process that draws none (a
scoring step, the command line) does not pay the half second it takes to load."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from entropy_assets.comparison import BEATS, WORSE, MethodComparison
from entropy_assets.composition import FacetMix
from entropy_assets.entropy_law import CurveFit, LawPoint, data_versions


@functools.cache
def _pyplot() -> Any:
    """``matplotlib.pyplot``, with the Agg backend: figures are only rendered to files, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _Figure:
    """A matplotlib figure that renders itself to PNG bytes when its ``with`` block ends."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure
        self.png = b""


@contextmanager
def _figure(
    dpi: int, *, rows: int = 1, size: tuple[float, float] = (6, 3.2), sharex: bool | None = None
) -> Iterator[tuple[_Figure, Any]]:
    share = rows > 1 if sharex is None else sharex
    figure, axes = _pyplot().subplots(rows, 1, figsize=size, dpi=dpi, sharex=share, squeeze=True)
    rendered = _Figure(figure)
    try:
        yield rendered, axes
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        rendered.png = buffer.getvalue()
    finally:
        _pyplot().close(figure)


def ratio_histogram_png(
    series: Mapping[str, np.ndarray],
    title: str,
    *,
    mix: tuple[str, FacetMix] | None = None,
    dpi: int = 80,
) -> bytes:
    """A PNG of overlaid, normalized histograms of per-sample compression ratios (one per named series); with
    ``mix`` (a facet and its mixes), a second panel of the pool's and the subset's shares over that facet."""
    values = [np.asarray(v, dtype=np.float64) for v in series.values() if len(v)]
    top = float(np.percentile(np.concatenate(values), 99.5)) if values else 1.0
    bins = np.linspace(min(float(v.min()) for v in values) if values else 0.0, max(top, 1.0), 40)
    rows, size = (2, (6, 5.6)) if mix is not None else (1, (6, 3.2))
    with _figure(dpi, rows=rows, size=size, sharex=False) as (figure, axes):
        panels = list(np.atleast_1d(axes))
        histogram = panels[0]
        for name, data in series.items():
            if len(data):
                histogram.hist(
                    np.clip(data, bins[0], bins[-1]),
                    bins=bins,
                    density=True,
                    alpha=0.55,
                    histtype="stepfilled",  # one polygon a series, not a rectangle a bin: a third of the drawing
                    label=f"{name} ({len(data)})",
                )
        histogram.set_xlabel("per-sample compression ratio (raw / compressed bytes)")
        histogram.set_ylabel("density")
        histogram.set_title(title, fontsize=10)
        histogram.legend(fontsize=8, loc="upper right", framealpha=0.8)  # "best" costs a search over every artist
        if mix is not None:
            _mix_panel(panels[1], *mix)
    return figure.png


def _mix_panel(axes: Any, facet: str, mixed: FacetMix, most: int = 8) -> None:
    """Side-by-side bars of the pool's and the subset's shares of a facet's largest values."""
    names = list(mixed.pool)[:most]
    names += [name for name in mixed.subset if name not in names][: max(most - len(names), 0)]
    positions = np.arange(len(names))
    axes.barh(positions - 0.2, [mixed.pool.get(n, 0.0) for n in names], height=0.4, label="pool")
    axes.barh(positions + 0.2, [mixed.subset.get(n, 0.0) for n in names], height=0.4, label="subset")
    axes.set_yticks(positions, [n if len(n) <= 28 else n[:25] + "..." for n in names], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("share of samples")
    axes.set_title(f"{facet} mix: total variation {mixed.distance:.2f} from the pool's", fontsize=9)
    axes.legend(fontsize=7, loc="lower right")


def loss_curve_png(losses: Sequence[float], title: str, *, dpi: int = 80) -> bytes:
    """A PNG of per-step training loss, raw and smoothed (a moving average over a tenth of the run)."""
    values = np.asarray(losses, dtype=np.float64)
    with _figure(dpi) as (figure, axes):
        if len(values):
            steps = np.arange(1, len(values) + 1)
            axes.plot(steps, values, alpha=0.35, label="per step")
            window = max(1, len(values) // 10)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            axes.plot(steps[window - 1 :], smooth, label=f"mean of {window}")
            axes.legend(fontsize=8)
        axes.set_xlabel("step")
        axes.set_ylabel("training loss (nats / token)")
        axes.set_title(title, fontsize=10)
    return figure.png


def law_scatter_png(
    points: Sequence[LawPoint],
    values: Sequence[float],
    curve: CurveFit | None,
    *,
    ylabel: str,
    title: str,
    fitted: Sequence[bool] | None = None,
    dpi: int = 90,
) -> bytes:
    """A PNG of R against a run value (L or Z): one point per run, coloured by data version and labelled by method
    and budget, with the fitted curve and its prediction band when there is one (the paper's Figures 3 and 4).

    Points with ``fitted`` False (excluded from the fit) are drawn hollow.
    """
    versions = data_versions(points)
    colours = _pyplot().get_cmap("tab10")
    fitted = list(fitted) if fitted is not None else [True] * len(points)
    with _figure(dpi, size=(7, 4.4)) as (figure, axes):
        if curve is not None:
            low, high = curve.x_range
            span = np.linspace(low - 0.05 * (high - low), high + 0.05 * (high - low), 200)
            band_low, band_high = curve.prediction_band(span)
            axes.fill_between(span, band_low, band_high, color="0.85", label=f"{curve.level:.0%} prediction band")
            axes.plot(span, curve.predict(span), color="0.25", label=f"{curve.formula}  (R² {curve.r_squared:.3f})")
        seen: set[str] = set()
        for point, value, used in zip(points, values, fitted, strict=True):
            index = versions.index(point.data_version)
            colour = colours(index % 10)
            label = f"v{index + 1} {point.data_version[:7]}" if point.data_version not in seen else None
            seen.add(point.data_version)
            axes.scatter(
                [point.ratio], [value], color=colour if used else "none", edgecolors=colour, s=28, zorder=3, label=label
            )
            axes.annotate(
                f"{point.method}/{point.budget}",
                (point.ratio, value),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        shown = [] if curve is None else [float(band_low.min()), float(band_high.max())]
        hidden = _zoom_to_fitted(axes, points, values, fitted, shown)
        if hidden:
            axes.text(
                0.99,
                0.01,
                "outside the fit and the view: " + ", ".join(hidden),
                transform=axes.transAxes,
                fontsize=6,
                ha="right",
                va="bottom",
                color="0.3",
            )
        axes.set_xlabel("compression ratio R of the subset (zlib-9)")
        axes.set_ylabel(ylabel)
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=6, loc="best")
    return figure.png


def _zoom_to_fitted(
    axes: Any, points: Sequence[LawPoint], values: Sequence[float], fitted: Sequence[bool], band: Sequence[float]
) -> list[str]:
    """Limit the view to the fitted points (and ``band``'s extent) when runs left out of the fit lie far away;
    returns the runs it hides."""
    inside = [(p.ratio, v) for p, v, used in zip(points, values, fitted, strict=True) if used]
    if not inside or all(fitted):
        return []
    xs, ys = zip(*inside, strict=True)
    x_pad = max(0.15 * (max(xs) - min(xs)), 0.1)
    y_pad = max(0.25 * (max(ys) - min(ys)), 0.05)
    x_low, x_high = min(xs) - x_pad, max(xs) + x_pad
    y_low, y_high = min(*ys, *band) - y_pad, max(*ys, *band) + y_pad
    axes.set_xlim(x_low, x_high)
    axes.set_ylim(y_low, y_high)
    return [
        f"{p.method}/{p.budget} (R {p.ratio:.2f}, {v:.3f})"
        for p, v, used in zip(points, values, fitted, strict=True)
        if not used and not (x_low <= p.ratio <= x_high and y_low <= v <= y_high)
    ]


def version_trajectory_png(points: Sequence[LawPoint], *, dpi: int = 90) -> bytes:
    """A PNG of R and L per method across data versions in the order they were first trained on (the paper's
    Figure 5): a version that moves against the others stands out before anyone trains on it in full."""
    versions = data_versions(points)
    methods = sorted({(p.method, p.budget) for p in points})
    with _figure(dpi, rows=2, size=(7, 5)) as (figure, (top, bottom)):
        for method, budget in methods:
            runs = sorted(
                (versions.index(p.data_version), p) for p in points if (p.method, p.budget) == (method, budget)
            )
            xs = [i + 1 for i, _ in runs]
            top.plot(xs, [p.ratio for _, p in runs], marker="o", label=f"{method}/{budget}")
            bottom.plot(xs, [p.loss for _, p in runs], marker="o")
        top.set_ylabel("R (zlib-9)")
        bottom.set_ylabel("first-epoch loss L")
        bottom.set_xlabel("data version")
        bottom.set_xticks(
            range(1, len(versions) + 1), [f"v{i + 1}\n{v[:7]}" for i, v in enumerate(versions)], fontsize=7
        )
        top.set_title("compression ratio and first-epoch loss across data versions", fontsize=10)
        top.legend(fontsize=6, ncols=3)
    return figure.png


def method_comparison_png(comparison: MethodComparison, *, dpi: int = 90) -> bytes:
    """Each method's Z (held-out loss) per budget with its interval against random's mean: a bar clear of random's
    line is a resolved verdict (green: beats random, red: worse), one across it is not resolved (grey). Random's
    subsets are the dots on the left."""
    budgets = sorted({row.budget for row in comparison.methods} | set(comparison.random))
    colors = {BEATS: "tab:green", WORSE: "tab:red"}
    with _figure(dpi, rows=len(budgets) or 1, size=(6.4, 2.6 * max(len(budgets), 1))) as (figure, axes):
        panels = list(np.atleast_1d(axes))
        for panel, budget in zip(panels, budgets, strict=True):
            spread = comparison.random.get(budget)
            names = ["random"]
            if spread is not None and spread.performance is not None:
                scored = spread.scored
                panel.scatter([0] * len(scored), scored, color="tab:orange", s=14, zorder=3)
                label = f"random: mean of {spread.seeds} subsets x {spread.training_seeds} training seeds"
                panel.axhline(spread.performance, color="tab:orange", lw=1, label=label)
            rows = [row for row in comparison.methods if row.budget == budget and row.performance is not None]
            for x, row in enumerate(rows, start=1):
                names.append(row.method)
                color = colors.get(row.verdict, "tab:gray")
                found = row.difference
                margin = None if found is None else [[found.estimate - found.low], [found.high - found.estimate]]
                panel.errorbar([x], [row.performance], yerr=margin, fmt="o", color=color, capsize=3, zorder=3)
            panel.set_xticks(range(len(names)), names, fontsize=8, rotation=20)
            panel.set_ylabel("Z (eval loss)", fontsize=8)
            level = f"{comparison.level:.0%} intervals"
            panel.set_title(f"budget {budget}: Z per method, {level} (lower is better)", fontsize=9)
            if spread is not None and spread.performance is not None:
                panel.legend(fontsize=7, loc="best")
    return figure.png
