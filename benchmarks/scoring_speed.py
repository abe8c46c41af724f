"""Scoring throughput, the current ``score_samples`` against the previous one, and what other zstd levels would give.

Three parts, on the shard-ordered pool that ``benchmarks/million_samples.py`` leaves under ``--workdir`` (else one
made from its JSONL records, else from the raw Alpaca chunks):

1. throughput, as the pipeline's ``compression_scores`` partitions score: per content-hash shard, ``read_shard``
   then ``score_samples`` at the default settings (zstd level 3), the shards spread over ``--processes`` warm worker
   processes of ``--threads`` compression threads each; the current code and the previous one (kept below as the
   baseline: texts as a list of bytes, frame sizes read one by one, reuse through Python dicts), passes alternating
   so that both meet the same machine; MB/s of pool text over the wall time, median of ``--repeat`` passes;
2. where one worker's time goes, on one shard in this process (one thread): CPU seconds of reading the shard,
   handing the texts to zstd, compressing, and the rest of ``score_samples``, for both versions (medians of
   ``--repeat``);
3. other levels, on ``--correlation-samples`` samples (whole shards): the batch call's MB/s on ``--processes``
   threads, and the Spearman rank correlation of per-sample ratios (bytes / compressed bytes) with level 3's.
   Levels >= 1 are ``ZstdCompressor`` (what scoring would store); negative levels, which it refuses, are raw zstd
   with the same frame flags.

Usage: ``python benchmarks/scoring_speed.py [--workdir DIR] [--shards 16] [--repeat 5] [--processes 2]
[--threads 1] [--levels 1,-1,-3,-5] [--correlation-samples 200000]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import zstandard as zstd
from scipy.stats import spearmanr

from entropy_assets import compression, scoring
from entropy_assets.compression import ZstdCompressor, default_threads, make_compressor
from entropy_assets.scoring import SCORES_SCHEMA, read_shard, reusable_scores, score_samples, settings_key
from entropy_assets.sources import load_pool

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
SPAWN = multiprocessing.get_context("spawn")


# --- the baseline: score_samples and ZstdCompressor.compressed_sizes before the packed path ------------------


def baseline_score_samples(
    frame: pl.DataFrame, compressor: ZstdCompressor, previous: pl.DataFrame | None = None, threads: int | None = None
) -> tuple[pl.DataFrame, int]:
    """``score_samples`` as it was: texts as a list of bytes, reuse through Python dicts."""
    known: dict[str, int] = {}
    previous = reusable_scores(previous, compressor)
    if previous is not None:
        known = dict(zip(previous["content_hash"].to_list(), previous["compressed_bytes"].to_list(), strict=True))
    hashes = frame["content_hash"].to_list()
    missing = [i for i, content in enumerate(hashes) if content not in known]
    texts = baseline_utf8(frame["text"], missing if len(missing) < len(hashes) else None)
    sizes = baseline_compressed_sizes(compressor, texts, threads or default_threads())
    known.update({hashes[i]: int(size) for i, size in zip(missing, sizes, strict=True)})
    scores = frame.select("id", "content_hash", "n_bytes").with_columns(
        compressed_bytes=pl.Series([known[content] for content in hashes], dtype=pl.Int64),
        compressor=pl.lit(settings_key(compressor)),
    )
    scores = scores.with_columns(ratio=pl.col("n_bytes") / pl.col("compressed_bytes"))
    return scores.select(list(SCORES_SCHEMA)).cast(dict(SCORES_SCHEMA)), len(missing)


def baseline_utf8(texts: pl.Series, positions: Sequence[int] | None) -> list[bytes]:
    if positions is not None:
        texts = texts.gather(list(positions))
    return texts.cast(pl.Binary).to_list()


def baseline_compressed_sizes(compressor: ZstdCompressor, items: Sequence[bytes], threads: int = 1) -> np.ndarray:
    """``ZstdCompressor.compressed_sizes`` as it was (list comprehensions over the items, sizes read one by one)."""
    base = zstd.ZstdCompressionParameters.from_level(compressor.level)
    shared_limit = min(1 << base.hash_log, 1 << (base.window_log - 1))
    cctx = zstd.ZstdCompressor(compression_params=compressor.parameters())
    sizes = np.zeros(len(items), dtype=np.int64)
    small = [i for i, item in enumerate(items) if len(item) <= compression._ZSTD_ATTACH_LIMIT]
    batch = list(items) if len(small) == len(items) else [items[i] for i in small]
    for i in sorted(set(range(len(items))) - set(small)):
        item = items[i]
        frame_size = compression._zstd_frame_size(cctx, item)
        sizes[i] = frame_size if len(item) <= shared_limit else compressor.compressed_size(item)
    if any(batch):
        frames = cctx.multi_compress_to_buffer(batch, threads=max(1, threads))
        sizes[small] = [len(frames[i]) for i in range(len(frames))]
    elif batch:
        sizes[small] = compression._zstd_frame_size(cctx, b"")
    return sizes


SCORERS: dict[str, Callable[..., tuple[pl.DataFrame, int]]] = {
    "baseline": baseline_score_samples,
    "current": score_samples,
}


# --- the pool -----------------------------------------------------------------------------------------------


def shard_file(workdir: Path, shards: int) -> tuple[Path, str]:
    """A shard-ordered pool file and where it came from: million_samples.py's, or one made here."""
    made = sorted(workdir.glob(f"pool-*-seed*-v*.shards{shards}.parquet"), key=os.path.getsize)
    if made:
        return made[-1], f"million_samples.py's shard-ordered pool {made[-1].name}"
    target = workdir / f"scoring-speed.shards{shards}.parquet"
    if target.is_file():
        return target, f"{target.name}, made by an earlier run"
    records = sorted(workdir.glob("records-*/pool_*.jsonl"))
    sources = records if records else sorted(RAW.glob("alpaca52k_en_part*.json"))
    if not sources:
        raise SystemExit(f"no pool under {workdir} and no raw data under {RAW}")
    pool = load_pool(sources, skip_malformed=True).frame
    workdir.mkdir(parents=True, exist_ok=True)
    scoring.write_shard_ordered(pool, shards, target)
    return target, f"{target.name}, made from {len(sources)} files ({sources[0].parent})"


# --- 1. throughput over worker processes --------------------------------------------------------------------


def score_shard(path: str, shard: int, shards: int, scorer: str, threads: int) -> dict[str, float]:
    """One partition's work, timed: read its shard, score it."""
    started = time.perf_counter()
    frame = read_shard(path, shard, shards)
    read_s = time.perf_counter() - started
    SCORERS[scorer](frame, make_compressor("zstd"), threads=threads)
    return {"read_s": read_s, "score_s": time.perf_counter() - started - read_s}


def throughput(path: Path, shards: int, processes: int, threads: int, repeat: int) -> dict[str, Any]:
    """Wall times of scoring every shard, each scorer ``repeat`` times (alternating), and the workers' split."""
    walls: dict[str, list[float]] = {name: [] for name in SCORERS}
    split: dict[str, dict[str, float]] = {}
    with ProcessPoolExecutor(processes, mp_context=SPAWN) as executor:
        list(executor.map(time.sleep, [1.0] * processes))  # every worker started before timing
        for _ in range(repeat + 1):  # the first pass of each warms imports and the page cache: not counted
            for name in SCORERS:
                started = time.perf_counter()
                futures = [executor.submit(score_shard, str(path), s, shards, name, threads) for s in range(shards)]
                results = [future.result() for future in futures]
                walls[name].append(time.perf_counter() - started)
                split[name] = {key: sum(r[key] for r in results) for key in ("read_s", "score_s")}
    return {"walls": {name: times[1:] for name, times in walls.items()}, "split": split}


# --- 2. where one worker's time goes ------------------------------------------------------------------------


def _median_time(function: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        started = clock()
        function()
        times.append(clock() - started)
    return statistics.median(times)


def _median_cpu(function: Callable[[], Any], repeat: int) -> float:
    return _median_time(function, repeat, time.process_time)


def breakdown(path: Path, shards: int, repeat: int) -> tuple[pl.DataFrame, dict[str, dict[str, float]]]:
    """CPU seconds of each step of scoring shard 0 on one thread, for both versions: CPU time, not wall time, so
    that another process on the machine disturbs the split less (and polars' reading threads all count)."""
    compressor = make_compressor("zstd")
    assert isinstance(compressor, ZstdCompressor)

    read = _median_cpu(lambda: read_shard(path, 0, shards), repeat)
    frame = read_shard(path, 0, shards)
    texts, packed = baseline_utf8(frame["text"], None), scoring._utf8(frame["text"], packed=True)
    steps = {
        "baseline": {
            "texts to bytes": _median_cpu(lambda: baseline_utf8(frame["text"], None), repeat),
            "compress": _median_cpu(lambda: baseline_compressed_sizes(compressor, texts, 1), repeat),
            "total": _median_cpu(lambda: baseline_score_samples(frame, compressor, threads=1), repeat),
        },
        "current": {
            "texts to bytes": _median_cpu(lambda: scoring._utf8(frame["text"], packed=True), repeat),
            "compress": _median_cpu(lambda: compressor.compressed_sizes(packed, 1), repeat),
            "total": _median_cpu(lambda: score_samples(frame, compressor, threads=1), repeat),
        },
    }
    cctx = zstd.ZstdCompressor(compression_params=compressor.parameters())
    small = [text for text in texts if 0 < len(text) <= compression._ZSTD_ATTACH_LIMIT]
    steps["zstd alone"] = {"compress": _median_cpu(lambda: cctx.multi_compress_to_buffer(small, threads=1), repeat)}
    for version in ("baseline", "current"):
        step = steps[version]
        step["rest of score_samples"] = step["total"] - step["texts to bytes"] - step["compress"]
    steps["read_shard"] = {"total": read}
    return frame, steps


# --- 3. other levels ----------------------------------------------------------------------------------------


def level_sizes(level: int, packed: zstd.BufferWithSegments, threads: int) -> np.ndarray:
    """Per-sample frame sizes at ``level``: ``ZstdCompressor``'s for levels >= 1, raw zstd's batch call below."""
    if level >= 1:
        return make_compressor("zstd", level).compressed_sizes(packed, threads)
    cctx = zstd.ZstdCompressor(level=level, write_checksum=False, write_content_size=False, write_dict_id=False)
    segments = np.frombuffer(packed.segments(), dtype=np.uint64).reshape(-1, 2)
    sizes = np.full(len(segments), len(cctx.compress(b"")), dtype=np.int64)
    filled = segments[:, 1] > 0  # the batch call drops empty items that end a thread's share
    batch = zstd.BufferWithSegments(packed, segments[filled].tobytes())
    frames = cctx.multi_compress_to_buffer(batch, threads=threads)
    sizes[filled] = np.fromiter(map(len, frames), dtype=np.int64, count=len(frames))
    return sizes


def levels(path: Path, shards: int, samples: int, chosen: list[int], threads: int, repeat: int) -> dict[str, Any]:
    """MB/s and the rank correlation of per-sample ratios with level 3's, for each level, over whole shards."""
    frames, total = [], 0
    for shard in range(shards):
        frames.append(read_shard(path, shard, shards))
        total += frames[-1].height
        if total >= samples:
            break
    frame = pl.concat(frames).head(samples)
    packed = scoring._utf8(frame["text"], packed=True)
    n_bytes = frame["n_bytes"].to_numpy().astype(np.float64)
    rows = {}
    reference = n_bytes / level_sizes(3, packed, threads)
    for level in [3, *chosen]:
        seconds = _median_time(lambda level=level: level_sizes(level, packed, threads), repeat)
        ratios = n_bytes / level_sizes(level, packed, threads)
        rows[level] = {"mb_s": n_bytes.sum() / 1e6 / seconds, "rho": spearmanr(reference, ratios).statistic}
        rows[level]["mean_ratio"] = float(ratios.mean())
    return {"samples": frame.height, "mb": n_bytes.sum() / 1e6, "rows": rows}


# --- report -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "entropy_million"))
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5, help="passes of each measurement (the median is quoted)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (concurrent partition runs)")
    parser.add_argument("--threads", type=int, default=1, help="compression threads per worker")
    parser.add_argument("--levels", default="1,-1,-3,-5", help="zstd levels to compare with level 3")
    parser.add_argument("--correlation-samples", type=int, default=200_000)
    args = parser.parse_args(argv)

    path, origin = shard_file(Path(args.workdir), args.shards)
    pool = pl.scan_parquet(path).select(pl.len(), pl.col("n_bytes").sum()).collect()
    rows, total_mb = int(pool.item(0, 0)), int(pool.item(0, 1)) / 1e6
    print(f"pool: {origin}: {rows:,} samples, {total_mb:,.1f} MB of text, {args.shards} shards; {os.cpu_count()} cores")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"  (load average {load:.1f} before starting: another process is busy; figures are noisier)")

    measured = throughput(path, args.shards, args.processes, args.threads, args.repeat)
    print(
        f"\n1. read_shard + score_samples (zstd 3) per shard, {args.processes} processes x {args.threads} thread(s), "
        f"median of {args.repeat} passes"
    )
    medians = {}
    for name, walls in measured["walls"].items():
        medians[name] = total_mb / statistics.median(walls)
        split = measured["split"][name]
        print(
            f"  {name:<9}{medians[name]:>7.1f} MB/s   (passes: {', '.join(f'{total_mb / w:.1f}' for w in walls)}); "
            f"workers' time: read {split['read_s']:.1f} s, score {split['score_s']:.1f} s"
        )
    print(f"  current / baseline: {medians['current'] / medians['baseline']:.2f}x; target 150 MB/s")

    frame, steps = breakdown(path, args.shards, args.repeat)
    mb = int(frame["n_bytes"].sum()) / 1e6
    print(f"\n2. one worker, one thread, shard 0 ({frame.height:,} samples, {mb:.1f} MB): CPU seconds (MB/s)")
    print(f"  read_shard: {steps['read_shard']['total']:.3f} s ({mb / steps['read_shard']['total']:.0f} MB/s)")
    for version in ("baseline", "current"):
        step = steps[version]
        print(
            f"  {version:<9} texts to zstd {step['texts to bytes']:.3f}, compress {step['compress']:.3f} "
            f"({mb / step['compress']:.0f} MB/s), rest {step['rest of score_samples']:.3f}; score_samples "
            f"{step['total']:.3f} s ({mb / step['total']:.0f} MB/s)"
        )
    alone = steps["zstd alone"]["compress"]
    print(f"  zstd's batch call alone over a list of the shard's texts: {alone:.3f} s ({mb / alone:.0f} MB/s)")

    chosen = [int(level) for level in args.levels.split(",") if level.strip()]
    found = levels(path, args.shards, args.correlation_samples, chosen, args.processes, args.repeat)
    print(
        f"\n3. levels, {found['samples']:,} samples ({found['mb']:.1f} MB), batch call on {args.processes} "
        f"thread(s), compression only, median of {args.repeat}"
    )
    print(f"  {'level':>6}{'MB/s':>8}{'mean ratio':>12}{'Spearman vs 3':>15}")
    for level, row in found["rows"].items():
        kind = "" if level >= 1 else "  (raw zstd)"
        print(f"  {level:>6}{row['mb_s']:>8.1f}{row['mean_ratio']:>12.3f}{row['rho']:>15.4f}{kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
