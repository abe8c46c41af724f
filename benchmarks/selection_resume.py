"""What checkpointing costs a ZIP run, and what resuming saves.

On the whole Alpaca 52K pool with the paper's defaults (budget 10000, K1=10000, K2=200, K3=100, ``default``
mode), in this one process so that all runs share the machine's conditions, alternating:

- ZIP without a checkpoint, and with one saved every ``--every-seconds`` (each of a comma-separated list; 0 is
  after every round; by default 0 and 2, the pipeline's setting); prints the median of ``--repeat`` runs of each,
  the overhead, the number of saves, their total time and the checkpoint's size;
- a run stopped after ``--stop-round`` rounds (an exception from the progress callback, right after that round's
  save), then resumed: prints the resumed run's time and whether it chose exactly what the uninterrupted run chose.

Usage: ``python benchmarks/selection_resume.py [--repeat N] [--every-seconds S,...] [--stop-round R]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl

from entropy_assets.selection.base import Selection
from entropy_assets.selection.checkpoint import SelectionCheckpoint
from entropy_assets.selection.zip import ZipConfig, zip_select
from entropy_assets.sources import load_pool

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
ALPACA_CHUNKS = sorted(RAW.glob("alpaca52k_en_part*.json"))


class _Stop(Exception):
    """Raised from the progress callback to stop a run after a round."""


def _timed(pool: pl.DataFrame, config: ZipConfig, checkpoint: SelectionCheckpoint | None) -> tuple[Selection, float]:
    started = time.perf_counter()
    selection = zip_select(pool, config, checkpoint=checkpoint)
    return selection, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--every-seconds", default="0,2")
    parser.add_argument("--stop-round", type=int, default=50)
    args = parser.parse_args()
    intervals = [float(value) for value in args.every_seconds.split(",")]

    started = time.perf_counter()
    pool = pl.concat([load_pool(path).frame for path in ALPACA_CHUNKS])
    loaded = time.perf_counter() - started
    print(f"pool: {pool.height} samples from {len(ALPACA_CHUNKS)} files, loaded in {loaded:.1f} s")
    config = ZipConfig(budget=10000)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "zip.checkpoint"
        times: dict[float | None, list[float]] = {interval: [] for interval in [None, *intervals]}
        saves: dict[float, list[int]] = {interval: [] for interval in intervals}
        save_seconds: dict[float, list[float]] = {interval: [] for interval in intervals}
        reference = None
        for _ in range(args.repeat):  # alternating, so that a busier moment of the machine falls on every variant
            reference, seconds = _timed(pool, config, None)
            times[None].append(seconds)
            for interval in intervals:
                checkpoint = SelectionCheckpoint(path, every_seconds=interval)
                checkpoint.remove()
                checkpointed, seconds = _timed(pool, config, checkpoint)
                times[interval].append(seconds)
                saves[interval].append(checkpoint.saves)
                save_seconds[interval].append(checkpoint.save_seconds)
                assert checkpointed.provenance.equals(reference.provenance)
        size = path.stat().st_size
        plain = statistics.median(times[None])
        print(f"rounds: {reference.summary['rounds'] if reference else 0}; checkpoint size {size / 1e6:.2f} MB")
        print(f"without checkpoint: median {plain:.2f} s  ({', '.join(f'{t:.2f}' for t in times[None])})")
        for interval in intervals:
            checked = statistics.median(times[interval])
            count, spent = statistics.median(saves[interval]), statistics.median(save_seconds[interval])
            print(
                f"checkpoint every {interval:g} s: median {checked:.2f} s  "
                f"({', '.join(f'{t:.2f}' for t in times[interval])}); overhead {checked - plain:+.2f} s "
                f"({(checked / plain - 1) * 100:+.1f}%); {count:.0f} saves a run taking {spent:.3f} s "
                f"({spent / max(count, 1) * 1000:.1f} ms a save)"
            )

        checkpoint = SelectionCheckpoint(path, every_seconds=0)
        checkpoint.remove()

        def stop(selected: int, rounds: list[int] = [0]) -> None:  # noqa: B006 (a counter across calls)
            rounds[0] += 1
            if rounds[0] == args.stop_round:
                raise _Stop

        started = time.perf_counter()
        with contextlib.suppress(_Stop):
            zip_select(pool, config, stop, checkpoint=checkpoint)
        stopped = time.perf_counter() - started
        resumed, seconds = _timed(pool, config, SelectionCheckpoint(path))
        same = reference is not None and resumed.provenance.equals(reference.provenance)
        print(
            f"stopped after round {args.stop_round} ({stopped:.2f} s), resumed from round "
            f"{resumed.summary['resumed_from_round']} in {seconds:.2f} s; same selection as uninterrupted: {same}"
        )


if __name__ == "__main__":
    main()
