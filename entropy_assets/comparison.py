"""Does a method beat random? Per budget, each method's R, L and Z beside random's mean and spread over seeds, and a
plain verdict on Z (the held-out loss: lower is better).

Random's spread is what chance alone moves Z by at this budget: a method beats random when its Z is below random's
mean by more than twice the standard deviation of random's seeds (``MARGIN_SDS``), loses when above by as much, and
is otherwise within random's spread. With fewer than two random seeds there is no spread, and no verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from entropy_assets.entropy_law import LawPoint

MARGIN_SDS = 2.0
"""How many standard deviations of random's Z a method must clear to beat (or lose to) random."""
RANDOM = "random"
SEED_SUFFIX = "_seed"
"""Random's extra seeds are methods ``random_seed1``, ``random_seed2``, ...: partitions of their own."""
ZIP_METHODS = ("zip", "zip_paper", "zip_hierarchical")


def is_random(method: str) -> bool:
    """Whether ``method`` is random at one of its seeds."""
    return method == RANDOM or method.startswith(RANDOM + SEED_SUFFIX)


@dataclass(frozen=True)
class RandomSpread:
    """Random's runs at one budget: how many seeds, and the mean and standard deviation of R, L and Z."""

    seeds: int
    ratio: float
    loss: float
    performance: float | None
    performance_sd: float | None
    """None with fewer than two seeds (or runs without Z)."""


@dataclass(frozen=True)
class MethodVerdict:
    """One method at one budget against random: its R, L and Z, Z's difference from random's mean in random's
    standard deviations, and the verdict (``beats random``, ``worse than random``, ``within random's spread``, or
    ``no verdict: ...``)."""

    method: str
    budget: int
    ratio: float
    loss: float
    performance: float | None
    z_score: float | None
    verdict: str

    @property
    def beats_random(self) -> bool:
        return self.verdict == "beats random"


@dataclass(frozen=True)
class MethodComparison:
    """Every method against random, per budget."""

    random: dict[int, RandomSpread]
    methods: tuple[MethodVerdict, ...]

    def zip_verdicts(self) -> list[MethodVerdict]:
        """The verdicts of the ZIP methods."""
        return [row for row in self.methods if row.method in ZIP_METHODS]

    def summary(self) -> str:
        """One sentence per ZIP method and budget, plainly."""
        lines = []
        for row in self.zip_verdicts():
            spread = self.random.get(row.budget)
            if spread is None or spread.performance is None or spread.performance_sd is None or row.z_score is None:
                lines.append(f"{row.method} at {row.budget}: {row.verdict}")
                continue
            lines.append(
                f"{row.method} at {row.budget}: {row.verdict} on Z ({row.performance:.4f} against random's "
                f"{spread.performance:.4f} ± {spread.performance_sd:.4f} over {spread.seeds} seeds, "
                f"{row.z_score:+.1f} sd)"
            )
        return "; ".join(lines) or "no ZIP run to compare"

    def markdown(self) -> str:
        """The table as the UI shows it."""
        lines = [
            "| budget | method | R | L | Z | Z vs random (sd) | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for budget, spread in sorted(self.random.items()):
            z = "-" if spread.performance is None else f"{spread.performance:.4f}"
            sd = "" if spread.performance_sd is None else f" ± {spread.performance_sd:.4f}"
            lines.append(
                f"| {budget} | random ({spread.seeds} seeds) | {spread.ratio:.4f} | {spread.loss:.4f} | {z}{sd} | | |"
            )
            for row in (r for r in self.methods if r.budget == budget):
                z_row = "-" if row.performance is None else f"{row.performance:.4f}"
                score = "-" if row.z_score is None else f"{row.z_score:+.1f}"
                lines.append(
                    f"| {budget} | {row.method} | {row.ratio:.4f} | {row.loss:.4f} | {z_row} | {score} "
                    f"| {row.verdict} |"
                )
        return "\n".join(lines)


def compare_methods(points: Sequence[LawPoint]) -> MethodComparison:
    """The comparison over the latest data version's runs (the latest run of each method and budget)."""
    if not points:
        return MethodComparison({}, ())
    newest = max(points, key=lambda p: p.timestamp).data_version
    latest: dict[tuple[str, int], LawPoint] = {}
    for point in sorted((p for p in points if p.data_version == newest), key=lambda p: p.timestamp):
        latest[(point.method, point.budget)] = point
    spreads: dict[int, RandomSpread] = {}
    for budget in sorted({budget for _, budget in latest}):
        seeds = [p for (method, b), p in latest.items() if b == budget and is_random(method)]
        if seeds:
            spreads[budget] = _spread(seeds)
    rows = tuple(
        _verdict(point, spreads.get(point.budget))
        for (method, _), point in sorted(latest.items(), key=lambda item: (item[0][1], item[0][0]))
        if not is_random(method)
    )
    return MethodComparison(spreads, rows)


def _spread(seeds: Sequence[LawPoint]) -> RandomSpread:
    performances = [p.performance for p in seeds if p.performance is not None]
    return RandomSpread(
        seeds=len(seeds),
        ratio=statistics.mean(p.ratio for p in seeds),
        loss=statistics.mean(p.loss for p in seeds),
        performance=statistics.mean(performances) if performances else None,
        performance_sd=statistics.stdev(performances) if len(performances) >= 2 else None,
    )


def _verdict(point: LawPoint, spread: RandomSpread | None) -> MethodVerdict:
    z_score = None
    if spread is None:
        verdict = "no verdict: no random run at this budget"
    elif point.performance is None or spread.performance is None:
        verdict = "no verdict: no held-out loss (Z)"
    elif spread.performance_sd is None:
        verdict = "no verdict: random needs two seeds or more (random_seeds)"
    else:
        sd = max(spread.performance_sd, 1e-12)
        z_score = (point.performance - spread.performance) / sd
        if not math.isfinite(z_score):
            verdict = "no verdict: random's spread is zero"
        elif z_score < -MARGIN_SDS:
            verdict = "beats random"
        elif z_score > MARGIN_SDS:
            verdict = "worse than random"
        else:
            verdict = "within random's spread"
    return MethodVerdict(point.method, point.budget, point.ratio, point.loss, point.performance, z_score, verdict)
