"""matplotlib figures, rendered to small PNGs for reports and asset metadata."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures are only rendered to files

import matplotlib.pyplot as plt
import numpy as np


class _Figure:
    """A matplotlib figure that renders itself to PNG bytes when its ``with`` block ends."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure
        self.png = b""


@contextmanager
def _figure(dpi: int) -> Iterator[tuple[_Figure, Any]]:
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=dpi)
    rendered = _Figure(figure)
    try:
        yield rendered, axes
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        rendered.png = buffer.getvalue()
    finally:
        plt.close(figure)


def ratio_histogram_png(series: Mapping[str, np.ndarray], title: str, *, dpi: int = 80) -> bytes:
    """A PNG of overlaid, normalized histograms of per-sample compression ratios (one per named series)."""
    values = [np.asarray(v, dtype=np.float64) for v in series.values() if len(v)]
    top = float(np.percentile(np.concatenate(values), 99.5)) if values else 1.0
    bins = np.linspace(min(float(v.min()) for v in values) if values else 0.0, max(top, 1.0), 40)
    with _figure(dpi) as (figure, axes):
        for name, data in series.items():
            if len(data):
                axes.hist(
                    np.clip(data, bins[0], bins[-1]), bins=bins, density=True, alpha=0.55, label=f"{name} ({len(data)})"
                )
        axes.set_xlabel("per-sample compression ratio (raw / compressed bytes)")
        axes.set_ylabel("density")
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8)
    return figure.png


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
