"""The law plot's labels: a cluster of runs (random's seeds, longest, dedup at nearly the same R and L, as on the
bundled sample) gets one readable label per run, none over another label or another run's point."""

from __future__ import annotations

import itertools

import numpy as np

from entropy_assets.plots import _crossings, _label_points, _pyplot

# R, L of the sample's runs at a budget of 300 (README): six of them within 0.03 of R and 0.02 of L
SAMPLE = {
    "zip": (2.4528, 3.4453),
    "zip_hierarchical": (2.4441, 3.4122),
    "zip_paper": (2.7147, 3.4097),
    "random": (3.0412, 3.3811),
    "random_seed1": (3.0522, 3.3902),
    "random_seed2": (3.0333, 3.3768),
    "longest": (3.0269, 3.3694),
    "longest_tokens": (3.0237, 3.3728),
    "dedup": (3.0488, 3.3833),
}


def test_clustered_runs_get_labels_that_cover_no_label_and_no_other_point() -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.4), dpi=90)
    try:
        xs, ys = zip(*SAMPLE.values(), strict=True)
        axes.scatter(xs, ys, s=28)
        axes.set_xlim(2.35, 3.15)
        axes.set_ylim(3.3, 3.5)
        _label_points(axes, [(x, y, f"{method}/300") for method, (x, y) in SAMPLE.items()])
        renderer = figure.canvas.get_renderer()
        labels = {text.get_text(): text.get_window_extent(renderer) for text in axes.texts}
        assert sorted(labels) == sorted(f"{method}/300" for method in SAMPLE)
        for (one, a), (other, b) in itertools.combinations(labels.items(), 2):
            assert not a.overlaps(b), f"{one} covers {other}"
        points = axes.transData.transform(list(SAMPLE.values()))
        half = 3.0 * figure.dpi / 72
        for (method, box), (_, point) in itertools.product(labels.items(), enumerate(points)):
            own = axes.transData.transform(SAMPLE[method.removesuffix("/300")])
            if np.allclose(point, own):
                continue
            assert not box.overlaps(type(box).from_extents(*(point - half), *(point + half))), f"{method} covers a run"
        frame = axes.get_window_extent(renderer)
        assert all(frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1) for box in labels.values())
    finally:
        plt.close(figure)


def test_a_leader_line_is_a_segment_through_a_box_only_where_it_enters_it() -> None:
    lines = np.array([[0, 0, 10, 10], [0, 0, 3, 3], [0, 5, 10, 5], [5, 0, 5, 3]], dtype=float)
    boxes = np.array([[4, 4, 6, 6]], dtype=float)
    assert _crossings(lines, boxes)[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
