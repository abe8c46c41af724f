"""ZIP selection speed and quality, against a plain full-recompression run of the published semantics.

Two scenarios, each in this one process so that all runs share the machine's conditions:

- ``small``: 5,000 Alpaca samples (in ShareGPT form, as the published program takes them), budget 300,
  K1=2000, K2=100, K3=50. Runs the plain reference, ``paper`` mode and ``default`` mode; prints each time
  (median of ``--repeat`` runs for the two modes), the speed-ups, each selected set's zlib-9 ratio over canonical
  text, and whether ``paper`` mode chose exactly what the plain reference chose.
- ``full``: the whole Alpaca 52K pool with the paper's defaults (budget 10000, K1=10000, K2=200, K3=100),
  ``default`` mode; prints the load and selection times, the peak memory, and the selected set's zlib-9 ratio
  beside a random subset's of the same size.
- ``hierarchical``: the same pool and settings, one ZIP pass against hierarchical ZIP (4 and 8 shards keeping
  twice their share, shards in 2 processes); prints median times and each selected set's zlib-9 ratio. Not part
  of ``all``.

Usage: ``python benchmarks/zip_selection.py [small|full|hierarchical|all] [--repeat N] [--plain-jobs N]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from entropy_assets.entropy_law import law_ratio
from entropy_assets.selection.base import Selection, tiebreak_order
from entropy_assets.selection.baselines import BaselineConfig, baseline_select
from entropy_assets.selection.hierarchical import HierarchicalConfig, hierarchical_zip_select
from entropy_assets.selection.reference import reference_zip_select
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import load_pool, pool_from_records

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
ALPACA_CHUNKS = sorted(RAW.glob("alpaca52k_en_part*.json"))


def zlib9_ratio(pool: pl.DataFrame, positions: Any) -> float:
    """R, the entropy law's ratio (zlib-9) of the selected samples' canonical text."""
    return law_ratio(pool["text"].gather(positions).to_list())


def timed(run: Callable[[], Any], repeat: int) -> tuple[Any, list[float]]:
    """The result of the last run and every run's wall time."""
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return result, times


def sharegpt_alpaca(limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` Alpaca records converted to ShareGPT form, as the published program reads them."""
    records: list[dict[str, Any]] = []
    for chunk in ALPACA_CHUNKS:
        for item in json.loads(chunk.read_text(encoding="utf-8")):
            prompt = item["instruction"] + (f"\n{item['input']}" if item.get("input") else "")
            records.append(
                {
                    "id": f"alpaca_{len(records)}",
                    "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": item["output"]}],
                    "source": "alpaca",
                }
            )
            if len(records) == limit:
                return records
    return records


def small(repeat: int, plain_jobs: int) -> None:
    budget, k1, k2, k3 = 300, 2000, 100, 50
    records = sharegpt_alpaca(5000)
    pool = pool_from_records(records, "alpaca5k_sharegpt").frame
    print(f"small: {pool.height} Alpaca samples (ShareGPT form), budget {budget}, K1={k1}, K2={k2}, K3={k3}")
    tiebreak = tiebreak_order(len(records), 0)
    plain, plain_times = timed(
        lambda: reference_zip_select(records, budget, k1, k2, k3, n_jobs=plain_jobs, tiebreak=tiebreak), 1
    )
    paper, paper_times = timed(lambda: zip_select(pool, ZipConfig.paper(budget, k1=k1, k2=k2, k3=k3)), repeat)
    default, default_times = timed(lambda: zip_select(pool, ZipConfig(budget, k1=k1, k2=k2, k3=k3)), repeat)
    plain_s = statistics.median(plain_times)
    rows = [
        ("plain full recompression", plain_s, plain_times, plain),
        ("paper mode", statistics.median(paper_times), paper_times, paper.positions.tolist()),
        ("default mode", statistics.median(default_times), default_times, default.positions.tolist()),
    ]
    plain_ratio = zlib9_ratio(pool, plain)
    print(f"{'method':<26}{'median s':>10}{'speed-up':>10}{'zlib-9 ratio':>14}{'vs plain':>10}   runs (s)")
    for name, seconds, times, positions in rows:
        ratio = zlib9_ratio(pool, positions)
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(
            f"{name:<26}{seconds:>10.2f}{plain_s / seconds:>9.1f}x{ratio:>14.4f}"
            f"{(ratio / plain_ratio - 1) * 100:>+9.2f}%   {runs}"
        )
    same = paper.positions.tolist() == list(plain)
    print(f"paper mode selected exactly the plain reference's records, in order: {same}")
    print(
        f"(plain: {plain_jobs} process(es); paper mode: {ZipConfig(1).threads} threads (zlib); "
        "default mode: zstd on one thread)"
    )


def full(repeat: int) -> None:
    started = time.perf_counter()
    loaded = load_pool(ALPACA_CHUNKS)
    load_s = time.perf_counter() - started
    pool = loaded.frame
    config = ZipConfig(budget=10000, k1=10000, k2=200, k3=100)
    print(f"full: {pool.height} Alpaca samples loaded in {load_s:.2f} s; budget 10000, K1=10000, K2=200, K3=100")
    selection, times = timed(lambda: zip_select(pool, config), repeat)
    assert isinstance(selection, Selection)
    random = baseline_select(pool, BaselineConfig(method="random", budget=10000, seed=0))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(times)
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(f"default mode selection: median {median:.2f} s over {repeat} run(s) ({runs})")
    print(f"load + selection: {load_s + median:.2f} s wall; peak memory (max RSS) {peak_mb:.0f} MB")
    print(f"zlib-9 ratio of the selected set: {zlib9_ratio(pool, selection.positions):.4f}")
    print(f"zlib-9 ratio of a random set of the same size: {zlib9_ratio(pool, random.positions):.4f}")


def hierarchical(repeat: int) -> None:
    pool = load_pool(ALPACA_CHUNKS).frame
    config = ZipConfig(budget=10000, k1=10000, k2=200, k3=100)
    print(f"hierarchical: {pool.height} Alpaca samples; budget 10000, K1=10000, K2=200, K3=100")
    single, times = timed(lambda: zip_select(pool, config), repeat)
    print(f"one pass:   median {statistics.median(times):6.2f} s, ratio {zlib9_ratio(pool, single.positions):.4f}")
    for shards in (4, 8):
        settings = HierarchicalConfig(zip=config, shards=shards, processes=2)
        chosen, times = timed(lambda settings=settings: hierarchical_zip_select(pool, settings), repeat)
        print(
            f"{shards} shards:   median {statistics.median(times):6.2f} s, ratio "
            f"{zlib9_ratio(pool, chosen.positions):.4f} (union {chosen.summary['union_size']}, "
            f"shards {chosen.summary['shard_seconds']:.2f} s)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("small", "full", "hierarchical", "all"), nargs="?", default="all")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode (the median is quoted)")
    parser.add_argument("--plain-jobs", type=int, default=1, help="processes for the plain reference")
    args = parser.parse_args(argv)
    if not ALPACA_CHUNKS:
        print(f"no Alpaca chunks under {RAW}", file=sys.stderr)
        return 1
    if args.scenario in ("small", "all"):
        small(args.repeat, args.plain_jobs)
    if args.scenario in ("full", "all"):
        full(args.repeat)
    if args.scenario == "hierarchical":
        hierarchical(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
