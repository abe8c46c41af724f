"""Is the verdict against random calibrated on real training (issue 24)?

On the bundled sample (``dagster_project/data/sample``: 700 records; evaluated on ``dagster_project/data/
sample_eval``, 100 records of the same files that are not in the pool), the built-in trainer trains at each
training seed:

- ``--subsets`` random subsets of ``--budget`` samples (selection seeds 0, 1, ...);
- two planted effects, each at two selection seeds: ``narrow``, a subset drawn from one source file only (the
  ShareGPT chats); and ``near_duplicates``, a tenth of the budget's records, each repeated ten times with a counter
  appended (a templated near-duplicate block, as in ``examples/data_update_risk.py``).

Then, over ``--trials`` comparisons made from those runs (random's ``--random-seeds`` subsets drawn from the random
ones, the method one more random subset, or a planted one), it counts how often each rule calls a difference:

- ``verdict``: ``entropy_assets.comparison.judge`` (the product's rule: the difference's t interval over random's
  subsets, level 95 %);
- ``2 sd``: the earlier rule, a method's Z beyond twice the standard deviation of random's subsets;
- ``Welch``: Welch's t test over every run (p < 0.05), treating the runs of one subset as independent.

Random against random is the false-positive rate (nominal 5 %); a planted effect's rate is the detection rate.
Trials share runs (every trial draws from the same trained subsets), so rates are estimates with correlated
trials, not independent experiments; the unit tests measure the rule's rate on independent simulated trials.

Usage: ``python benchmarks/verdict_calibration.py [--steps 60] [--seeds 2] [--subsets 12] [--budget 300]
[--random-seeds 3] [--builtin '{"eval_sequences": 256}'] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from entropy_assets.comparison import NOT_RESOLVED, WORSE, RandomRuns, SubsetRuns, judge
from entropy_assets.sources import load_pool
from entropy_assets.training.builtin import BuiltinTrainerConfig, train_builtin

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "dagster_project" / "data" / "sample"
EVAL = ROOT / "dagster_project" / "data" / "sample_eval"


def planted_subsets(texts: list[str], sources: list[str], budget: int, seed: int) -> dict[str, list[str]]:
    """The two planted effects at one selection seed."""
    rng = random.Random(1000 + seed)
    narrow = [t for t, s in zip(texts, sources, strict=True) if "fastchat" in s]
    base = rng.sample(texts, budget // 10)
    copies = [f"{text} ({i})" for text in base for i in range(10)]
    return {"narrow": rng.sample(narrow, min(budget, len(narrow))), "near_duplicates": copies[:budget]}


def train(texts: list[str], eval_texts: list[str], steps: int, seeds: int, extra: dict) -> tuple[SubsetRuns, float]:
    """A subset trained at each training seed: its runs, and the median seconds of one run."""
    losses, z, seconds = [], [], []
    for seed in range(seeds):
        metrics = train_builtin(texts, eval_texts, BuiltinTrainerConfig(seed=seed, max_steps=steps, **extra))
        losses.append(metrics.first_epoch_loss)
        z.append(float(metrics.eval_loss))  # type: ignore[arg-type]
        seconds.append(metrics.seconds)
    return SubsetRuns("subset", 0.0, tuple(losses), tuple(z)), statistics.median(seconds)


def old_rule(method: SubsetRuns, randoms: list[SubsetRuns]) -> bool:
    """The earlier verdict: beyond twice random's standard deviation over seeds."""
    means = [r.performance for r in randoms]
    return abs(method.performance - statistics.fmean(means)) > 2 * statistics.stdev(means)  # type: ignore[operator]


def welch(method: SubsetRuns, randoms: list[SubsetRuns]) -> bool:
    """Welch's t test over runs, each run counted as independent."""
    from scipy import stats

    runs = [z for r in randoms for z in r.performances]
    if len(method.performances) < 2:
        return False
    return bool(stats.ttest_ind(method.performances, runs, equal_var=False).pvalue < 0.05)


def rates(method_pool: list[SubsetRuns], randoms: list[SubsetRuns], m: int, trials: int, seed: int) -> dict:
    """How often each rule calls a difference, over ``trials`` draws of random's ``m`` subsets (disjoint from the
    method's subset when it is a random one)."""
    rng = random.Random(seed)
    called = {"verdict": 0, "worse": 0, "2 sd": 0, "Welch": 0}
    combos = 0
    for _ in range(trials):
        method = rng.choice(method_pool)
        others = [r for r in randoms if r is not method]
        chosen = rng.sample(others, m)
        verdict = judge(method, 0, RandomRuns(tuple(chosen))).verdict
        called["verdict"] += verdict != NOT_RESOLVED
        called["worse"] += verdict == WORSE
        called["2 sd"] += old_rule(method, chosen)
        called["Welch"] += welch(method, chosen)
        combos += 1
    return {name: count / combos for name, count in called.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per subset")
    parser.add_argument("--subsets", type=int, default=12, help="random subsets trained")
    parser.add_argument("--random-seeds", type=int, default=3, help="random's subsets in each comparison")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--builtin", default="{}", help="BuiltinTrainerConfig overrides, as JSON")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    extra = json.loads(args.builtin)
    pool = load_pool([str(POOL)]).frame
    texts, sources = pool["text"].to_list(), pool["source"].to_list()
    eval_texts = load_pool([str(EVAL)]).frame["text"].to_list()
    started = time.perf_counter()
    randoms, seconds = [], []
    for seed in range(args.subsets):
        runs, took = train(random.Random(seed).sample(texts, args.budget), eval_texts, args.steps, args.seeds, extra)
        randoms.append(runs)
        seconds.append(took)
    planted: dict[str, list[SubsetRuns]] = {"narrow": [], "near_duplicates": []}
    for seed in range(2):
        for name, subset in planted_subsets(texts, sources, args.budget, seed).items():
            runs, took = train(subset, eval_texts, args.steps, args.seeds, extra)
            planted[name].append(runs)
            seconds.append(took)
    m = args.random_seeds
    figures = {
        "steps": args.steps,
        "training_seeds": args.seeds,
        "random_subsets_trained": args.subsets,
        "random_seeds_per_comparison": m,
        "runs_per_comparison": (m + 1) * args.seeds,
        "builtin": extra,
        "seconds_per_run_median": round(statistics.median(seconds), 2),
        "training_minutes": round((time.perf_counter() - started) / 60, 1),
        "random_z": [round(r.performance, 4) for r in randoms],  # type: ignore[arg-type]
        "subset_sd": round(RandomRuns(tuple(randoms)).performance_sd or 0.0, 4),
        "training_sd": round(RandomRuns(tuple(randoms)).training_sd or 0.0, 4),
        "random_vs_random": rates(randoms, randoms, m, args.trials, 1),
    }
    for name, subsets in planted.items():
        figures[name] = {
            "z": [round(s.performance, 4) for s in subsets],  # type: ignore[arg-type]
            **rates(subsets, randoms, m, args.trials, 2),
        }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
