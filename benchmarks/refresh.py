"""What a small data change costs (issue 15): the pool rebuilt from scratch against the incremental update, and a
ZIP subset re-selected from scratch against a warm start from the previous subset.

The pool is Alpaca 52K from ``../shared/data/raw`` (18 files). Two changes, each against that base:

- ``append``: a 19th file of 520 new records (the first 520 of ``llamafactory_alpaca_en_demo.json``, Alpaca-style
  instructions with other responses);
- ``edit``: 50 records of one existing file (part 05) edited, a sentence appended to each response.

For each change, in this one process so that both sides share the machine's conditions:

1. pool: ``build_pool`` (the ``pool`` asset's step) into a fresh storage (the full build) against the same step on
   a storage that holds the base version's parts (the incremental update); median of ``--repeat`` of each, run
   alternately. Target: the update at most 15% of the full build.
2. selection: ZIP (default mode) of 10,000 at the paper's K's (K1=10000, K2=200, K3=100). The previous subset is a
   full selection on the base pool; on the changed pool, a full re-selection against a warm one from the previous
   subset; median time of ``--repeat`` each, the zlib-9 ratio of each (targets: warm time at most 20% of full's,
   warm ratio at most 1% above full's), and the churn of each against the previous subset (target: warm's lower).

Usage: ``python benchmarks/refresh.py [--repeat N] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from entropy_assets.entropy_law import law_ratio
from entropy_assets.selection.base import Selection
from entropy_assets.selection.warm import WarmStart
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import read_pool
from entropy_assets.stages import Workspace, build_pool
from entropy_assets.stages.churn import Churn, churn
from entropy_assets.storage import Storage

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
CONFIG = ZipConfig(budget=10_000, k1=10_000, k2=200, k3=100)
EDITED_FILE = "alpaca52k_en_part05_12345-15323.json"
APPENDED = 520
EDITED = 50


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def base_files(folder: Path) -> Path:
    """A fresh copy of the 18 Alpaca files (writable, unlike the shared originals)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for file in sorted(RAW.glob("alpaca52k_en_part*.json")):
        shutil.copyfile(file, folder / file.name)
    return folder


def append_change(folder: Path) -> str:
    records = json.loads((RAW / "llamafactory_alpaca_en_demo.json").read_text(encoding="utf-8"))[:APPENDED]
    (folder / "alpaca52k_en_part19_new.json").write_text(json.dumps(records), encoding="utf-8")
    return f"a 19th file of {APPENDED} new records"


def edit_change(folder: Path) -> str:
    records = json.loads((folder / EDITED_FILE).read_text(encoding="utf-8"))
    for record in records[:EDITED]:
        record["output"] += " (Revised: this answer was edited after the first selection.)"
    (folder / EDITED_FILE).write_text(json.dumps(records), encoding="utf-8")
    return f"{EDITED} records of {EDITED_FILE} edited"


def pool_builds(workdir: Path, change: Callable[[Path], str], repeat: int) -> dict[str, Any]:
    """Full builds and incremental updates of the changed data, alternately; each update starts from a storage
    holding only the base version's build."""
    base = base_files(workdir / "data")
    seed_store = workdir / "seed-store"
    shutil.rmtree(seed_store, ignore_errors=True)
    seed = Workspace("refresh", Storage(str(seed_store)))
    base_pool = seed_store / build_pool(seed, [str(base)]).file
    description = change(base)
    full_s, update_s = [], []
    result: dict[str, Any] = {"change": description}
    for run in range(repeat):
        full_store, update_store = workdir / f"full-{run}", workdir / f"update-{run}"
        shutil.rmtree(full_store, ignore_errors=True)
        shutil.rmtree(update_store, ignore_errors=True)
        shutil.copytree(seed_store, update_store)
        seconds, full = timed(
            lambda store=full_store: build_pool(Workspace("refresh", Storage(str(store))), [str(base)])
        )
        full_s.append(seconds)
        seconds, update = timed(
            lambda store=update_store: build_pool(Workspace("refresh", Storage(str(store))), [str(base)])
        )
        update_s.append(seconds)
        assert full.version == update.version and full.records_kept == update.records_kept
        result.update(
            records=update.records_kept,
            files=update.files,
            files_parsed=update.files_parsed,
            records_parsed=update.records_parsed,
            full_files_parsed=full.files_parsed,
            same_rows=read_pool(full_store / full.file).equals(read_pool(update_store / update.file)),
        )
        shutil.rmtree(full_store)
        shutil.rmtree(update_store)
    changed_pool = seed_store / build_pool(seed, [str(base)]).file
    result.update(full_s=full_s, update_s=update_s, base_pool=base_pool, changed_pool=changed_pool)
    return result


def ratio(selection: Selection, pool: pl.DataFrame) -> float:
    return law_ratio(pool["text"].gather(selection.positions).to_list())


def chosen(selection: Selection, pool: pl.DataFrame) -> pl.DataFrame:
    return pool.select("id", "content_hash")[selection.positions]


def reselections(
    old_pool: pl.DataFrame, previous: Selection, new_pool: pl.DataFrame, repeat: int
) -> dict[str, dict[str, Any]]:
    provenance = chosen(previous, old_pool)
    warm = WarmStart.from_provenance(provenance, set(old_pool["content_hash"].to_list()))
    runs: dict[str, Callable[[], Selection]] = {
        "full": lambda: zip_select(new_pool, CONFIG),
        "warm": lambda: zip_select(new_pool, CONFIG, warm=warm),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    selections: dict[str, Selection] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            took, selections[name] = timed(run)
            seconds[name].append(took)
    out: dict[str, dict[str, Any]] = {}
    for name, selection in selections.items():
        changes: Churn = churn(provenance, chosen(selection, new_pool), old_pool, new_pool)
        out[name] = {
            "seconds": seconds[name],
            "ratio": ratio(selection, new_pool),
            "selected": len(selection.positions),
            "churn": changes,
            "warm": selection.summary.get("warm"),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if not RAW.is_dir():
        print(f"no raw data under {RAW}", file=sys.stderr)
        return 1
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="entropy-refresh-"))
    print(
        f"refresh benchmark: Alpaca 52K (18 files), ZIP {CONFIG.budget:,} at K1={CONFIG.k1}, K2={CONFIG.k2}, "
        f"K3={CONFIG.k3}; median of {args.repeat}"
    )
    verdicts: list[bool] = []
    for change in (append_change, edit_change):
        pools = pool_builds(workdir / change.__name__, change, args.repeat)
        full, update = statistics.median(pools["full_s"]), statistics.median(pools["update_s"])
        print(f"\n{pools['change']}: pool of {pools['records']:,} records from {pools['files']} files")
        print(
            f"  pool  full build {full:6.2f} s (parsed {pools['full_files_parsed']} files; runs "
            + ", ".join(f"{s:.2f}" for s in pools["full_s"])
            + f")\n        update     {update:6.2f} s (parsed {pools['files_parsed']} file(s), "
            f"{pools['records_parsed']:,} records; runs "
            + ", ".join(f"{s:.2f}" for s in pools["update_s"])
            + f")  = {update / full * 100:.1f}% of full (target <= 15%); same rows: {pools['same_rows']}"
        )
        verdicts.append(update / full <= 0.15 and pools["same_rows"])

        old_pool, new_pool = read_pool(pools["base_pool"]), read_pool(pools["changed_pool"])
        previous = zip_select(old_pool, CONFIG)
        runs = reselections(old_pool, previous, new_pool, args.repeat)
        full_run, warm_run = runs["full"], runs["warm"]
        full_s, warm_s = statistics.median(full_run["seconds"]), statistics.median(warm_run["seconds"])
        print(f"  previous subset: full ZIP on the base pool, zlib-9 ratio {ratio(previous, old_pool):.4f}")
        print(f"  {'re-selection':<14}{'seconds':>9}{'ratio':>9}{'kept':>7}{'added':>7}{'removed':>9}   why")
        for name, run in runs.items():
            changes = run["churn"]
            print(
                f"  {name:<14}{statistics.median(run['seconds']):>9.2f}{run['ratio']:>9.4f}{changes.kept:>7,}"
                f"{changes.added:>7,}{changes.removed:>9,}   "
                + "; ".join(f"{why} {count:,}" for why, count in sorted(changes.by_reason.items()))
            )
        print(f"  warm start: {warm_run['warm']}")
        time_ok = warm_s <= 0.2 * full_s
        ratio_ok = warm_run["ratio"] <= full_run["ratio"] * 1.01
        churn_ok = warm_run["churn"].added < full_run["churn"].added
        print(
            f"  warm/full time {warm_s / full_s * 100:.1f}% (target <= 20%), ratio "
            f"{(warm_run['ratio'] / full_run['ratio'] - 1) * 100:+.2f}% (target <= +1%), churn "
            f"{warm_run['churn'].added:,} vs {full_run['churn'].added:,} added (target: warm below full)"
        )
        assert full_run["selected"] == warm_run["selected"] == CONFIG.budget
        verdicts += [time_ok, ratio_ok, churn_ok]
    print(f"\ntargets: {'all met' if all(verdicts) else 'NOT all met'}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
