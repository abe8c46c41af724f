"""Ten million samples through the pipeline's steps, each step in a process of its own: the pool, the scores of every
shard, hierarchical ZIP's selection within every shard, and its final pass to a subset of 100,000 (issue 17;
targets on this 2-core machine: no process above 2.5 GB, all steps together under 30 minutes).

The samples are made as ``million_samples.py`` makes its million (distinct raw records, then recombinations of
their parts), written as JSONL files of 20,000 records under ``--workdir`` and reused. Every step calls the function
its Dagster asset calls (``build_pool``, ``score_shard``, ``select_shard``, ``select_subset`` with the shards'
winners), with the results handed on as the assets hand them on through the event log. Shard steps run two at a
time, each in a fresh process (as two partition runs of a backfill would on two cores), so that each step's peak
memory (max RSS) is its own. Random's ratio is measured on a random 100,000 of the pool, read by id.

``--methods random longest ratio dedup near_dedup`` (and ``--random-seeds 3``) adds each method's ``selected_subset``
step, in a fresh process each, two at a time beside hierarchical ZIP's final pass, as Dagster would run those
partitions (issue 23: every method bounded). Peaks are max RSS in MiB. ``--train`` then trains on every subset (the
built-in trainer's defaults, one ``training_run`` step each, in a fresh process, one at a time: torch uses both
cores, and two side by side took three times as long) and prints the verdict's table: each method against random's
subsets (``comparison.compare_methods``). Every subset holds out the evaluation samples, as the pipeline does.

Usage: ``python benchmarks/ten_million.py [--samples N] [--shards S] [--budget B] [--workdir DIR] [--parallel P]
[--reuse] [--methods M ...] [--random-seeds N] [--train]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from million_samples import BUILD_VERSION, build_files, peak_mb

from entropy_assets.comparison import compare_methods, comparison_text
from entropy_assets.entropy_law import law_ratio
from entropy_assets.scoring import shard_keys
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.stages import (
    PoolResult,
    ScoresResult,
    ScoringSettings,
    ShardSelectionResult,
    ShardWinners,
    SubsetResult,
    SubsetSettings,
    TrainingSettings,
    Workspace,
    build_pool,
    score_shard,
    select_shard,
    select_subset,
    train_on_subset,
)
from entropy_assets.stages.pool_reads import pool_column, rows_with
from entropy_assets.storage import Storage

SPAWN = multiprocessing.get_context("spawn")
NAME = "ten_million"


TRAINING = TrainingSettings()
"""The built-in trainer's defaults; its evaluation samples (``holdout``) are held out of every subset."""


def subset_settings(budget: int, shards: int) -> SubsetSettings:
    """zip_hierarchical at ``budget`` with the paper's K's (10,000 / 200 / 100), one process per step."""
    options = SelectionOptions(budget=budget, k1=10_000, k2=200, k3=100, shards=shards, processes=1)
    config = method_config("zip_hierarchical", options)
    return SubsetSettings("zip_hierarchical", budget, config, holdout=TRAINING.holdout)


def workspace(store: str) -> Workspace:
    return Workspace(NAME, Storage(store))


class PeakWatch:
    """Samples this process's resident memory every 0.2 s and keeps where the main thread was at the highest: the
    innermost ``entropy_assets`` functions on its stack."""

    def __init__(self) -> None:
        self.highest, self.where = 0.0, ""
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with open("/proc/self/statm") as handle:
                rss = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
            if rss > self.highest:
                frame = sys._current_frames().get(self._main)
                names = [f.name for f in traceback.extract_stack(frame) if "entropy_assets" in f.filename]
                self.highest, self.where = rss, " < ".join(reversed(names[-3:]))

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        return self.where


def timed(step: str, function: Any, *args: Any) -> dict[str, Any]:
    """``function(*args)``, its wall time, this process's max RSS (each call runs in a fresh process) and where its
    memory was highest."""
    started = time.perf_counter()
    watch = PeakWatch()
    result = function(*args)
    where = watch.stop()
    return {
        "step": step,
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "peak_at": where,
        "result": result,
    }


def pool_step(store: str, data: str, shards: int) -> dict[str, Any]:
    return timed("pool", lambda: build_pool(workspace(store), [data], shards=shards))


def score_step(store: str, pool: PoolResult, shards: int, shard: str) -> dict[str, Any]:
    return timed(f"scores[{shard}]", score_shard, workspace(store), pool, ScoringSettings(shards=shards), shard, None)


def shard_step(
    store: str, pool: PoolResult, scores: ScoresResult, shards: int, budget: int, shard: str
) -> dict[str, Any]:
    scoring = ScoringSettings(shards=shards)
    subset = subset_settings(budget, shards)
    return timed(f"shard_selection[{shard}]", select_shard, workspace(store), pool, scores, scoring, shard, subset)


def method_step(
    store: str, pool: PoolResult, scores: dict[str, ScoresResult], shards: int, budget: int, method: str, seed: int
) -> dict[str, Any]:
    """One method's ``selected_subset`` partition (not hierarchical): its step as the asset runs it."""
    options = SelectionOptions(budget=budget, shards=shards, processes=1, seed=seed)
    subset = SubsetSettings(method, budget, method_config(method, options), holdout=TRAINING.holdout)
    name = f"selected_subset[{partition(method, seed)}]"
    return timed(name, select_subset, workspace(store), pool, scores, subset, ScoringSettings(shards=shards))


HIERARCHICAL = "zip_hierarchical"


def subset_step(
    store: str,
    pool: PoolResult,
    scores: dict[str, ScoresResult],
    winners: dict[str, ShardSelectionResult],
    shards: int,
    budget: int,
    method: str,
    seed: int,
) -> dict[str, Any]:
    """A ``selected_subset`` partition: hierarchical ZIP's final pass over its shards' ``winners``, or ``method``'s
    subset; each runs beside the others, as Dagster runs the partitions of one graph."""
    if method != HIERARCHICAL:
        return method_step(store, pool, scores, shards, budget, method, seed)
    settings = (subset_settings(budget, shards), ScoringSettings(shards=shards))
    selected = ShardWinners(dict(winners))
    name = f"selected_subset[{HIERARCHICAL}]"
    return timed(name, select_subset, workspace(store), pool, scores, *settings, None, selected)


def partition(method: str, seed: int) -> str:
    """The method's partition: random's extra seeds are ``random_seed1``, ... as in the pipeline."""
    return method if seed == 0 else f"{method}_seed{seed}"


def train_step(store: str, subset: SubsetResult, method: str, budget: int) -> dict[str, Any]:
    """One ``training_run`` partition on ``subset``: the built-in trainer, as the asset runs it."""
    return timed(
        f"training_run[{method}]",
        lambda: train_on_subset(workspace(store), subset, method, budget, TRAINING, run_id=method),
    )


def random_ratio(store: str, pool: PoolResult, budget: int, seed: int) -> dict[str, Any]:
    """The zlib-9 ratio of a random ``budget`` of the pool (what the random baseline would select)."""

    def measure() -> float:
        storage = Storage(store)
        ids = pool_column(storage, pool.file, "id")
        drawn = ids.gather(np.random.default_rng(seed).choice(len(ids), size=budget, replace=False))
        return law_ratio(rows_with(storage, pool.file, "id", set(drawn.to_list()), ["text"])["text"].to_list())

    return timed("random subset (for comparison)", measure)


def in_fresh_processes(function: Any, arguments: list[tuple[Any, ...]], parallel: int) -> list[dict[str, Any]]:
    """``function`` over ``arguments``, ``parallel`` at a time, each call in a process of its own (not a daemonic
    one, as multiprocessing's pool makes: the pool step starts processes of its own, as in a Dagster step)."""
    with ProcessPoolExecutor(parallel, mp_context=SPAWN, max_tasks_per_child=1) as pool:
        return list(pool.map(function, *zip(*arguments, strict=True)))


def disk_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def report(rows: list[dict[str, Any]]) -> None:
    print(f"{'step':<40}{'wall s':>10}{'peak MiB':>10}  highest in")
    for row in rows:
        print(f"{row['step']:<40}{row['seconds']:>10.1f}{row['peak_mb']:>10.0f}  {row.get('peak_at', '')}")


def summary(name: str, rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    seconds = [row["seconds"] for row in rows]
    peaks = [row["peak_mb"] for row in rows]
    top = max(rows, key=lambda row: row["peak_mb"])
    return {
        "step": f"{name} ({len(rows)} steps; median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s)",
        "seconds": wall,
        "peak_mb": max(peaks),
        "peak_at": top.get("peak_at", ""),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--parallel", type=int, default=2, help="shard steps at once (partition runs side by side)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "entropy_million"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the store of an earlier run: its steps reuse what it made"
    )
    parser.add_argument(
        "--methods", nargs="*", default=[], help="other methods' subsets too, each a step in a fresh process"
    )
    parser.add_argument("--random-seeds", type=int, default=1, help="with random among --methods: this many seeds")
    parser.add_argument("--train", action="store_true", help="train on every subset and print the verdict's table")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    records = workdir / f"records-{args.samples}-seed{args.seed}-v{BUILD_VERSION}"
    if not (records / "manifest.json").exists():
        print(f"writing {args.samples:,} samples to {records} ...", flush=True)
        (made,) = in_fresh_processes(build_files, [(str(records), args.samples, args.seed)], 1)
        print(f"  {made['seconds']} s, {disk_mb(records):,.0f} MB", flush=True)
    data = workdir / f"data-{args.samples}"
    if not data.exists():
        data.mkdir(parents=True)
        for file in sorted(records.glob("pool_*.jsonl")):
            (data / file.name).symlink_to(file)
    store = workdir / f"store-{args.samples}-{args.shards}"
    if not args.reuse:
        shutil.rmtree(store, ignore_errors=True)
    shards = shard_keys(args.shards)
    started = time.perf_counter()

    (pool_row,) = in_fresh_processes(pool_step, [(str(store), str(data), args.shards)], 1)
    pool: PoolResult = pool_row["result"]
    print(f"pool: {pool.records_kept:,} samples in {pool_row['seconds']:.1f} s", flush=True)

    began = time.perf_counter()
    score_rows = in_fresh_processes(score_step, [(str(store), pool, args.shards, s) for s in shards], args.parallel)
    score_wall = time.perf_counter() - began
    scores = {row["result"].shard: row["result"] for row in score_rows}
    print(f"scores: {score_wall:.1f} s", flush=True)

    began = time.perf_counter()
    arguments = [(str(store), pool, scores[s], args.shards, args.budget, s) for s in shards]
    winner_rows = in_fresh_processes(shard_step, arguments, args.parallel)
    winner_wall = time.perf_counter() - began
    winners = {row["result"].shard: row["result"] for row in winner_rows}
    print(f"shard selections: {winner_wall:.1f} s", flush=True)

    runs = [(m, seed) for m in args.methods for seed in (range(args.random_seeds) if m == "random" else (0,))]
    # hierarchical ZIP's final pass beside the other methods' subsets, the longest first (near_dedup computes the
    # pool's near-duplicate keys when the pool has none yet), so that no step runs alone at the end
    steps = sorted([(HIERARCHICAL, 0), *runs], key=lambda run: run[0] != "near_dedup")
    rows_by_run = dict(
        zip(
            steps,
            in_fresh_processes(
                subset_step,
                [(str(store), pool, scores, winners, args.shards, args.budget, m, seed) for m, seed in steps],
                args.parallel,
            ),
            strict=True,
        )
    )
    final_row, method_rows = rows_by_run[(HIERARCHICAL, 0)], [rows_by_run[run] for run in runs]
    training_rows: list[dict[str, Any]] = []
    if args.train:
        subsets = {HIERARCHICAL: final_row["result"]}
        subsets.update({partition(m, seed): row["result"] for (m, seed), row in zip(runs, method_rows, strict=True)})
        arguments = [(str(store), result, name, args.budget) for name, result in subsets.items()]
        training_rows = in_fresh_processes(train_step, arguments, 1)  # torch uses every core: one at a time
    steps_wall = time.perf_counter() - started
    (random_row,) = in_fresh_processes(random_ratio, [(str(store), pool, args.budget, args.seed)], 1)

    subset = final_row["result"]
    rows = [
        pool_row,
        summary("compression_scores", score_rows, score_wall),
        summary("shard_selection", winner_rows, winner_wall),
        final_row,
        *method_rows,
        *training_rows,
    ]
    print()
    report(rows)
    print(f"{'all steps':<40}{steps_wall:>10.1f}{max(r['peak_mb'] for r in rows):>10.0f}")
    report([random_row])
    raw_bytes = sum(f.stat().st_size for f in records.glob("pool_*.jsonl"))
    scored = sum(row["result"].rows for row in score_rows)
    print(
        f"\nsamples {pool.records_kept:,} ({scored:,} scored, {pool.bytes / 1e9:.2f} GB of canonical text); raw "
        f"JSONL {raw_bytes / 1e9:.2f} GB; disk: records {disk_mb(records):,.0f} MB, store {disk_mb(store):,.0f} MB"
    )
    score_seconds = sum(row["seconds"] for row in score_rows)
    print(
        f"scoring: {pool.bytes / 1e6 / score_wall:.0f} MB/s of canonical text ({score_wall:.1f} s wall over "
        f"{len(shards)} shards, {args.parallel} at a time; {pool.bytes / 1e6 / score_seconds * args.parallel:.0f} "
        "MB/s by the steps' own times)"
    )
    print(
        f"subset: {subset.size:,} samples, zlib-9 R {subset.ratio_zlib9} (random: "
        f"{random_row['result']:.4f}); union of winners {sum(w.winners for w in winners.values()):,}"
    )
    if training_rows:
        points = [row["result"].point() for row in training_rows]
        print("\nthe verdict (each method against random's subsets):")
        print(comparison_text(compare_methods(points).rows()))
    out = {
        "steps": [{k: v for k, v in row.items() if k != "result"} for row in [*rows, random_row]],
        "all_steps_s": steps_wall,
        "subset_ratio": subset.ratio_zlib9,
        "random_ratio": random_row["result"],
        "scored_samples": scored,
        "text_bytes": pool.bytes,
        "score_wall_s": score_wall,
        "score_step_seconds_sum": score_seconds,
    }
    (workdir / f"ten_million-{args.samples}.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
