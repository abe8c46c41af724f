"""Does a method beat random? Per budget, each method's Z (the held-out loss: lower is better) against random's, with
the difference's interval and a verdict that says how sure it is.

Two kinds of chance move Z: which samples a random draw takes (the selection seed) and how training goes (the
training seed: initialization and batch order). Random is drawn at several selection seeds (``random_seeds``) and
every subset can be trained at several training seeds (``training.seeds``); a subset's Z is the mean over its
training seeds. The unit of the comparison is the subset: random's subset means vary by ``s`` (their standard
deviation, with ``m - 1`` degrees of freedom from ``m`` random subsets), and a method's one subset is judged as one
more draw would be. The difference ``d`` = method's Z - random's mean then has standard error ``s * sqrt(1 + 1/m)``
(adjusted when the method was trained at another number of seeds), and its interval is Student's t at ``m - 1``
degrees of freedom: the prediction interval of a new random subset, shifted. So two random seeds are called
different at the nominal rate (5 % at a 95 % level), which the calibration tests and
``benchmarks/verdict_calibration.py`` measure; a method is called better or worse only when the interval excludes
zero.

Treating every training run as independent (a Welch test over runs) would not do either way: the runs of one
subset share its samples, so their spread misses what another draw would change, and runs at the same training
seed share their initialization and batch order across subsets, which a comparison at the same seeds cancels; on
the sample its false-positive rate was 0.9 % against 5 % nominal (too wide, so it misses effects). The earlier rule,
twice random's standard deviation with no t quantile, called random different from random 22 % of the time at 3
seeds (``benchmarks/verdict_calibration.py`` measures all three).

When the interval includes zero, the verdict says how many runs would resolve a difference of the observed size at
80 % power: more random subsets shrink the uncertainty of random's mean, more training seeds shrink each subset's
training noise (estimated from random's runs, less what a seed does to every subset alike); a difference smaller than
what subsets differ by whatever the training noise cannot be resolved by more runs at all, and the verdict says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from entropy_assets.entropy_law import LawPoint

LEVEL = 0.95
"""Confidence level of the difference's interval (two-sided)."""
POWER = 0.8
"""The power at which ``runs needed`` resolves a difference of the observed size."""
MAX_RANDOM_SEEDS = 200
MAX_TRAINING_SEEDS = 32
"""The largest plan ``runs needed`` considers; beyond it a difference is called unresolvable."""
RANDOM = "random"
SEED_SUFFIX = "_seed"
"""Random's extra seeds are methods ``random_seed1``, ``random_seed2``, ...: partitions of their own."""
ZIP_METHODS = ("zip", "zip_paper", "zip_hierarchical")

BEATS = "beats random"
WORSE = "worse than random"
NOT_RESOLVED = "not resolved"


def is_random(method: str) -> bool:
    """Whether ``method`` is random at one of its seeds."""
    return method == RANDOM or method.startswith(RANDOM + SEED_SUFFIX)


@dataclass(frozen=True)
class SubsetRuns:
    """The runs of one subset: its R, and L and Z at each training seed."""

    method: str
    ratio: float
    losses: tuple[float, ...]
    performances: tuple[float, ...]
    """Z per training seed; empty when the runs reported none."""

    @property
    def performance(self) -> float | None:
        """The subset's Z: the mean over its training seeds."""
        return statistics.fmean(self.performances) if self.performances else None

    @classmethod
    def of(cls, point: LawPoint) -> SubsetRuns:
        performances = point.performances or ((point.performance,) if point.performance is not None else ())
        return cls(point.method, point.ratio, point.losses or (point.loss,), tuple(performances))


@dataclass(frozen=True)
class RandomRuns:
    """Random's subsets at one budget: how many, the training seeds of each, and their mean R, L and Z with the
    standard deviation of their Z (None with fewer than two subsets)."""

    subsets: tuple[SubsetRuns, ...]

    @property
    def seeds(self) -> int:
        """Random's subsets (selection seeds)."""
        return len(self.subsets)

    @property
    def training_seeds(self) -> int:
        """Training seeds per subset (the fewest, when they differ)."""
        return min((len(s.performances) for s in self.subsets), default=0)

    @property
    def runs(self) -> int:
        return sum(len(s.performances) for s in self.subsets)

    @property
    def ratio(self) -> float:
        return statistics.fmean(s.ratio for s in self.subsets)

    @property
    def loss(self) -> float:
        return statistics.fmean(statistics.fmean(s.losses) for s in self.subsets)

    @property
    def scored(self) -> list[float]:
        """The Z of each subset that has one."""
        return [z for z in (s.performance for s in self.subsets) if z is not None]

    @property
    def performance(self) -> float | None:
        scored = self.scored
        return statistics.fmean(scored) if scored else None

    @property
    def performance_sd(self) -> float | None:
        """The standard deviation of random's subsets' Z: what a new draw moves Z by."""
        scored = self.scored
        return statistics.stdev(scored) if len(scored) >= 2 else None

    @property
    def training_sd(self) -> float | None:
        """What training alone moves one run's Z by, apart from what the training seed does to every subset alike:
        every subset trains at the same seeds (``seed``, ``seed + 1``, ...), and a seed's initialization and batch
        order shift all of them together, which a comparison at the same seeds cancels. So the estimate is the
        residual of subset and seed effects (two-way, without replication); None with fewer than two seeds."""
        k = self.training_seeds
        rows = [s.performances[:k] for s in self.subsets if len(s.performances) >= k]
        if k < 2 or len(rows) < 2:
            return None
        grand = statistics.fmean(z for row in rows for z in row)
        subset_means = [statistics.fmean(row) for row in rows]
        seed_means = [statistics.fmean(row[t] for row in rows) for t in range(k)]
        squares = sum(
            (row[t] - subset_means[j] - seed_means[t] + grand) ** 2 for j, row in enumerate(rows) for t in range(k)
        )
        return math.sqrt(squares / ((len(rows) - 1) * (k - 1)))


@dataclass(frozen=True)
class Difference:
    """A method's Z minus random's mean (negative: the method's held-out loss is lower), with its interval."""

    estimate: float
    low: float
    high: float
    level: float
    dof: int
    standard_error: float


@dataclass(frozen=True)
class RunsNeeded:
    """A plan that would resolve a difference of the observed size at ``POWER``: random at ``random_seeds``
    subsets, every subset (the method's too) trained at ``training_seeds`` seeds."""

    random_seeds: int
    training_seeds: int

    @property
    def runs(self) -> int:
        """Training runs of the comparison: random's subsets and the method's, each at every training seed."""
        return (self.random_seeds + 1) * self.training_seeds


@dataclass(frozen=True)
class MethodVerdict:
    """One method at one budget against random: its R, L and Z, the difference from random's Z with its interval,
    the verdict (``beats random``, ``worse than random``, ``not resolved``, or ``no verdict: ...``), the runs it
    rests on and, when not resolved, the runs a difference of this size would need."""

    method: str
    budget: int
    ratio: float
    loss: float
    performance: float | None
    verdict: str
    runs: int = 0
    """Training runs compared: the method's and random's."""
    difference: Difference | None = None
    needed: RunsNeeded | None = None
    """None when resolved, without a verdict, or when no number of runs would resolve it."""
    training_noise_known: bool = True
    """Whether random's runs measured the training noise (two training seeds or more): without it, only more random
    subsets were considered."""

    @property
    def beats_random(self) -> bool:
        return self.verdict == BEATS

    @property
    def z_score(self) -> float | None:
        """The difference in standard errors."""
        found = self.difference
        return None if found is None or found.standard_error == 0 else found.estimate / found.standard_error

    def sentence(self) -> str:
        """The verdict in one sentence a user can act on."""
        name = f"{self.method} at {self.budget}"
        found = self.difference
        if found is None:
            return f"{name}: {self.verdict}."
        detail = (
            f"Z {self.performance:.4f} against random's {self.performance - found.estimate:.4f}, difference "
            f"{found.estimate:+.4f}, {found.level:.0%} interval [{found.low:+.4f}, {found.high:+.4f}], {self.runs} runs"
        )
        if self.verdict == BEATS:
            return f"{name}: {_label(self.method)} beats random ({detail})."
        if self.verdict == WORSE:
            return f"{name}: random beats {_label(self.method)} ({detail})."
        if self.needed is None and not self.training_noise_known:
            return (
                f"{name}: not resolved with {self.runs} runs, and more random subsets alone would not resolve it; "
                f"train at 2 seeds or more (training.seeds) to tell how much of random's spread training seeds "
                f"would remove ({detail})."
            )
        if self.needed is None:
            return (
                f"{name}: not resolved with {self.runs} runs, and more would not resolve it: the difference is "
                f"smaller than what one random subset differs from another by ({detail})."
            )
        plan = self.needed
        return (
            f"{name}: not resolved with {self.runs} runs; need about {plan.runs} (random_seeds: {plan.random_seeds}, "
            f"training seeds: {plan.training_seeds}) ({detail})."
        )

    def to_dict(self) -> dict[str, Any]:
        found, plan = self.difference, self.needed
        return {
            "method": self.method,
            "budget": self.budget,
            "ratio": self.ratio,
            "loss": self.loss,
            "performance": self.performance,
            "verdict": self.verdict,
            "runs": self.runs,
            "difference": None if found is None else vars(found),
            "needed": None if plan is None else {**vars(plan), "runs": plan.runs},
            "sentence": self.sentence(),
        }


@dataclass(frozen=True)
class MethodComparison:
    """Every method against random, per budget."""

    random: dict[int, RandomRuns]
    methods: tuple[MethodVerdict, ...]
    level: float = LEVEL

    def zip_verdicts(self) -> list[MethodVerdict]:
        """The verdicts of the ZIP methods."""
        return [row for row in self.methods if row.method in ZIP_METHODS]

    def summary(self) -> str:
        """One sentence per ZIP method and budget."""
        return " ".join(row.sentence() for row in self.zip_verdicts()) or "No ZIP run to compare."

    def rows(self) -> list[dict[str, Any]]:
        """The table as the UI and the command line show it: random's row per budget, then each method's."""
        table: list[dict[str, Any]] = []
        for budget, spread in sorted(self.random.items()):
            table.append(
                {
                    "budget": budget,
                    "method": f"random ({spread.seeds} subsets)",
                    "R": round(spread.ratio, 4),
                    "L": round(spread.loss, 4),
                    "Z": _rounded(spread.performance),
                    "runs": spread.runs,
                    "difference": None,
                    "interval": f"sd {spread.performance_sd:.4f}" if spread.performance_sd is not None else "",
                    "verdict": "",
                }
            )
            for row in (r for r in self.methods if r.budget == budget):
                found = row.difference
                table.append(
                    {
                        "budget": budget,
                        "method": row.method,
                        "R": round(row.ratio, 4),
                        "L": round(row.loss, 4),
                        "Z": _rounded(row.performance),
                        "runs": row.runs,
                        "difference": None if found is None else round(found.estimate, 4),
                        "interval": "" if found is None else f"[{found.low:+.4f}, {found.high:+.4f}]",
                        "verdict": _verdict_cell(row),
                    }
                )
        return table

    def verdict_rows(self) -> list[dict[str, Any]]:
        """Each method's verdict against random as a table's rows: its Z, random's mean Z and the spread of random's
        subsets, how many of those spreads the method lies from random's mean (negative: lower loss), the verdict
        and the runs it rests on. Rounded for reading (4 decimals; the distance to 2): the exact figures are in
        ``to_dict``."""
        table: list[dict[str, Any]] = []
        for row in self.methods:
            spread = self.random.get(row.budget)
            mean = spread.performance if spread is not None else None
            sd = spread.performance_sd if spread is not None else None
            distance = None
            if row.performance is not None and mean is not None and sd:
                distance = round((row.performance - mean) / sd, 2)
            table.append(
                {
                    "method": row.method,
                    "budget": row.budget,
                    "Z": _rounded(row.performance),
                    "random Z": _rounded(mean),
                    "random sd": _rounded(sd),
                    "distance (sd)": distance,
                    "verdict": _verdict_cell(row, plan=True),
                    "runs": row.runs,
                }
            )
        return table

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the level, random's subsets per budget and every verdict."""
        return {
            "level": self.level,
            "random": {
                str(budget): {
                    "subsets": spread.seeds,
                    "training_seeds": spread.training_seeds,
                    "runs": spread.runs,
                    "ratio": spread.ratio,
                    "loss": spread.loss,
                    "performance": spread.performance,
                    "performance_sd": spread.performance_sd,
                    "training_sd": spread.training_sd,
                }
                for budget, spread in sorted(self.random.items())
            },
            "methods": [row.to_dict() for row in self.methods],
        }


def compare_methods(points: Sequence[LawPoint], *, level: float = LEVEL) -> MethodComparison:
    """The comparison over the latest data version's runs (the latest run of each method and budget, on the
    evaluation set of the newest run)."""
    if not points:
        return MethodComparison({}, (), level)
    newest = max(points, key=lambda p: p.timestamp)
    latest: dict[tuple[str, int], LawPoint] = {}
    for point in sorted(points, key=lambda p: p.timestamp):
        if point.data_version == newest.data_version and point.eval_version == newest.eval_version:
            latest[(point.method, point.budget)] = point
    randoms: dict[int, RandomRuns] = {}
    for budget in sorted({budget for _, budget in latest}):
        seeds = [SubsetRuns.of(p) for (method, b), p in sorted(latest.items()) if b == budget and is_random(method)]
        if seeds:
            randoms[budget] = RandomRuns(tuple(seeds))
    rows = tuple(
        judge(SubsetRuns.of(point), point.budget, randoms.get(point.budget), level=level)
        for (method, _), point in sorted(latest.items(), key=lambda item: (item[0][1], item[0][0]))
        if not is_random(method)
    )
    return MethodComparison(randoms, rows, level)


def comparison_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison's rows (``MethodComparison.rows``) as fixed-width text, for a terminal."""
    header = f"{'budget':>7}  {'method':<22}{'R':>8}{'L':>8}{'Z':>8}{'runs':>6}{'Z - random':>12}  {'interval':<20}"
    lines = [header + "verdict"]
    for row in rows:
        z = f"{row['Z']:8.4f}" if row["Z"] is not None else f"{'-':>8}"
        difference = f"{row['difference']:+12.4f}" if row["difference"] is not None else f"{'':>12}"
        lines.append(
            f"{row['budget']:>7}  {row['method']:<22}{row['R']:8.4f}{row['L']:8.4f}{z}{row['runs']:>6}{difference}  "
            f"{row['interval']:<20}{row['verdict']}"
        )
    return "\n".join(lines)


def judge(method: SubsetRuns, budget: int, random: RandomRuns | None, *, level: float = LEVEL) -> MethodVerdict:
    """The verdict on one method's subset against random's subsets at its budget (see the module's docstring)."""
    row = {"method": method.method, "budget": budget, "ratio": method.ratio, "loss": statistics.fmean(method.losses)}
    z = method.performance
    if random is None:
        return MethodVerdict(**row, performance=z, verdict="no verdict: no random run at this budget")
    if z is None or random.performance is None:
        return MethodVerdict(**row, performance=z, verdict="no verdict: no held-out loss (Z)")
    spread, k = random.performance_sd, random.training_seeds
    if spread is None:
        verdict = "no verdict: random needs two subsets or more (random_seeds)"
        return MethodVerdict(**row, performance=z, verdict=verdict)
    m = len(random.scored)
    within = random.training_sd
    variance = _subset_variance(spread, within, k, len(method.performances))
    standard_error = math.sqrt(variance + spread**2 / m)
    estimate = z - random.performance
    margin = t_quantile(level, m - 1) * standard_error
    difference = Difference(estimate, estimate - margin, estimate + margin, level, m - 1, standard_error)
    runs = random.runs + len(method.performances)
    if difference.high < 0:
        return MethodVerdict(**row, performance=z, verdict=BEATS, runs=runs, difference=difference)
    if difference.low > 0:
        return MethodVerdict(**row, performance=z, verdict=WORSE, runs=runs, difference=difference)
    needed = runs_needed(abs(estimate), spread, within, k, level=level)
    return MethodVerdict(
        **row,
        performance=z,
        verdict=NOT_RESOLVED,
        runs=runs,
        difference=difference,
        needed=needed,
        training_noise_known=within is not None,
    )


def runs_needed(
    difference: float,
    subset_sd: float,
    training_sd: float | None,
    training_seeds: int,
    *,
    level: float = LEVEL,
    power: float = POWER,
) -> RunsNeeded | None:
    """The plan with the fewest runs that would resolve ``difference`` at ``power``: random's subsets, and training
    seeds per subset, given what subsets differ by now (``subset_sd`` over ``training_seeds``) and the training
    noise (``training_sd``; without it, only the number of subsets can change). None when no plan up to
    ``MAX_RANDOM_SEEDS`` subsets and ``MAX_TRAINING_SEEDS`` training seeds would."""
    if difference <= 0:
        return None
    if training_sd is None:  # only the number of subsets can change
        plans = [(training_seeds, subset_sd**2)]
    else:
        between = max(subset_sd**2 - training_sd**2 / training_seeds, 0.0)
        plans = [(seeds, between + training_sd**2 / seeds) for seeds in range(1, MAX_TRAINING_SEEDS + 1)]
    best: RunsNeeded | None = None
    for seeds, variance in plans:

        def resolves(subsets: int, variance: float = variance) -> bool:
            quantiles = t_quantile(level, subsets - 1) + _t(power, subsets - 1)
            return difference >= quantiles * math.sqrt(variance * (1 + 1 / subsets))

        if not resolves(MAX_RANDOM_SEEDS):
            continue
        low, high = 2, MAX_RANDOM_SEEDS  # the fewest subsets that resolve it: ``resolves`` only turns true
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if resolves(middle) else (middle + 1, high)
        plan = RunsNeeded(low, seeds)
        if best is None or plan.runs < best.runs:
            best = plan
    return best


def t_quantile(level: float, dof: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``dof`` degrees of freedom."""
    return _t(0.5 + level / 2, dof)


@cache
def _t(probability: float, dof: int) -> float:
    from scipy import stats  # imported on first use: loading scipy takes about a second

    return float(stats.t.ppf(probability, dof))


def _subset_variance(spread: float, within: float | None, random_training_seeds: int, method_seeds: int) -> float:
    """The variance of one subset's Z at the method's training seeds: random's between-subset variance, corrected
    for a different number of training seeds when the training noise is known."""
    variance = spread**2
    if within is not None and method_seeds and method_seeds != random_training_seeds:
        variance += within**2 * (1 / method_seeds - 1 / random_training_seeds)
    return max(variance, 0.0)


def _label(method: str) -> str:
    return "ZIP" if method == "zip" else method


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _verdict_cell(row: MethodVerdict, *, plan: bool = False) -> str:
    """The verdict in a few words; with ``plan``, the runs a not resolved difference needs split into random's
    subsets and training seeds."""
    if row.verdict != NOT_RESOLVED:
        return row.verdict
    if row.needed is not None:
        split = f" (random_seeds: {row.needed.random_seeds}, training seeds: {row.needed.training_seeds})"
        return f"not resolved; need about {row.needed.runs} runs" + (split if plan else "")
    return "not resolved; more runs would not" if row.training_noise_known else "not resolved; try training seeds"
