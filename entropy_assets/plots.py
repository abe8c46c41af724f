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
    dpi: int = 90,
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
    axes.set_ylabel(facet)
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
        _label_points(axes, [(p.ratio, v, f"{p.method}/{p.budget}") for p, v in zip(points, values, strict=True)])
        axes.legend(fontsize=6, loc="best")  # where it covers no point or label
    return figure.png


LABEL_RADII = (4.0, 10.0, 16.0, 24.0, 34.0, 46.0, 60.0, 76.0)
"""How far from its point a label may go (points), nearest first: beyond the first, a leader line joins them."""
LABEL_ANGLES = np.radians(np.arange(45, 405, 15))
"""The directions a label is tried in, upper right first."""


def _label_points(axes: Any, labels: Sequence[tuple[float, float, str]], *, fontsize: float = 6) -> None:
    """Label each point ``(x, y, text)`` in view where its label covers no other label, point or text of the axes:
    beside the point where there is room, else further out with a leader line that crosses no label or point, so
    that the labels of a cluster of runs fan out instead of printing over each other. Each label takes the nearest
    such place, the most crowded points' first."""
    figure = axes.figure
    figure.tight_layout()  # measure in the layout the figure is saved with
    renderer = figure.canvas.get_renderer()
    frame = axes.get_window_extent(renderer)
    pixels = figure.dpi / 72
    anchors = axes.transData.transform([(x, y) for x, y, _ in labels]).reshape(-1, 2)
    inside = (anchors >= (frame.x0, frame.y0)).all(axis=1) & (anchors <= (frame.x1, frame.y1)).all(axis=1)
    shown = np.flatnonzero(inside)
    half = 3.0 * pixels  # a marker's half width
    markers = np.hstack([anchors - half, anchors + half])
    texts = [tuple(text.get_window_extent(renderer).extents) for text in axes.texts]
    leaders: list[tuple[float, float, float, float]] = []
    # every place a label may take, as offsets (points) from its point and the share of its size left and below
    radii, angles = (grid.ravel() for grid in np.meshgrid(LABEL_RADII, LABEL_ANGLES, indexing="ij"))
    offsets = np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])
    shift = np.where(offsets > 1, 0.0, np.where(offsets < -1, 1.0, 0.5))
    near = np.abs(anchors[shown, None, :] - anchors[None, shown, :]).sum(axis=2) < 30 * pixels
    for i in shown[np.argsort(-near.sum(axis=1), kind="stable")]:
        x, y, text = labels[i]
        probe = axes.text(0, 0, text, fontsize=fontsize)
        size = np.array([probe.get_window_extent(renderer).width, probe.get_window_extent(renderer).height])
        probe.remove()
        corners = anchors[i] + offsets * pixels - shift * size
        boxes = np.hstack([corners, corners + size])
        fits = (boxes[:, :2] >= (frame.x0, frame.y0)).all(axis=1) & (boxes[:, 2:] <= (frame.x1, frame.y1)).all(axis=1)
        others = np.array([j for j in shown if j != i], dtype=int)
        kept_clear = np.vstack([markers[[i]], markers[others] + (-2, -2, 2, 2) * np.array(pixels), *_rows(texts)])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        lines = np.hstack([np.broadcast_to(anchors[i], centres.shape), centres])
        crossed = _crossings(lines, np.vstack([markers[others], *_rows(texts)])).sum(axis=1) * (radii > LABEL_RADII[0])
        crossed += _crossings(np.array(leaders).reshape(-1, 4), boxes).sum(axis=0)
        cost = 8 * _overlaps(boxes, kept_clear) + size.prod() * (crossed + radii / LABEL_RADII[-1])
        if not fits.any():
            continue
        best = int(np.argmin(np.where(fits, cost, np.inf)))
        (dx, dy), box = offsets[best], boxes[best]
        far = radii[best] > LABEL_RADII[0]
        if far:
            leaders.append((*anchors[i], *centres[best]))
        axes.annotate(
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=fontsize,
            ha=("left", "center", "right")[int(shift[best, 0] * 2)],
            va=("bottom", "center", "top")[int(shift[best, 1] * 2)],
            arrowprops={"arrowstyle": "-", "color": "0.3", "lw": 0.6, "shrinkA": 1, "shrinkB": 3} if far else None,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
            zorder=2.5,  # over the curve, under the points
        )
        texts.append(tuple(box + np.array([-pixels, -pixels, pixels, pixels])))


def _rows(boxes: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Boxes as a (n, 4) array for ``np.vstack`` (nothing for none)."""
    return [np.asarray(boxes, dtype=float).reshape(-1, 4)] if boxes else []


def _overlaps(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The area each of ``boxes`` shares with ``others``, summed (boxes as rows ``x0, y0, x1, y1``)."""
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    return (np.clip(width, 0, None) * np.clip(height, 0, None)).sum(axis=1)


def _crossings(lines: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether each segment (rows ``x0, y0, x1, y1``) passes through the inside of each box (rows ``x0, y0, x1,
    y1``): a (segments, boxes) array of 0 and 1 (Liang-Barsky)."""
    start, step = lines[:, None, :2], lines[:, None, 2:] - lines[:, None, :2]
    steps = np.concatenate([-step, step], axis=2)  # leaving through x0, y0, then x1, y1
    room = np.concatenate([start - boxes[None, :, :2], boxes[None, :, 2:] - start], axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = room / steps
    low = np.max(np.where(steps < 0, t, 0.0), axis=2, initial=0.0)
    high = np.min(np.where(steps > 0, t, 1.0), axis=2, initial=1.0)
    parallel_outside = ((steps == 0) & (room <= 0)).any(axis=2)
    return ((low < high) & ~parallel_outside).astype(float)


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
            panel.set_xlabel("method", fontsize=8)
            panel.set_ylabel("Z (eval loss)", fontsize=8)
            level = f"{comparison.level:.0%} intervals"
            panel.set_title(f"budget {budget}: Z per method, {level} (lower is better)", fontsize=9)
            if spread is not None and spread.performance is not None:
                panel.legend(fontsize=7, loc="best")
    return figure.png
