"""A pool of a million samples built from the raw files: scoring throughput and peak memory, and hierarchical ZIP's
time to select 50,000 (issue 7; targets on a 2-core machine: scoring >= 150 MB/s, peak memory < 4 GB, selection
< 5 minutes).

The pool holds every distinct raw record (up to ``samples / 16`` of them) and deterministic recombinations of their
parts to reach ``--samples`` distinct canonical texts: multi-turn ShareGPT conversations of 2-4 instruction/response
pairs, OpenAI-messages chats of 1-3 pairs, Alpaca records whose response belongs to another instruction, Alpaca
records whose input is a passage spliced from C4/Wikipedia sentences, and plain-text splices of sentences from 2-3
C4/Wikipedia documents. They are written once as JSONL files of 20,000 records under ``--workdir`` and reused.

Each phase runs in a fresh process, so that its peak memory (max RSS) is its own:

1. load: ``load_pool`` over the JSONL files, then ``write_pool`` to parquet;
2. scoring, as the pipeline's ``compression_scores`` partitions do it: per content-hash shard, ``read_shard`` then
   ``score_samples``, the shards spread over worker processes (two workers: two concurrent partition runs; one
   worker for comparison), at zstd levels 3 (the default) and 1, and raw zstd level -1 for reference; the median
   wall time of ``--repeat`` passes over the pool, with warm workers;
3. selection: ``hierarchical_zip_select`` of 50,000 (K1=10000, K2=200, K3=100) over ``--shards`` shards in one
   process per core, and the zlib-9 ratio of the chosen set beside a random set of the same size.

4. the pool step: ``build_pool`` (the ``pool`` asset) over the files with ``--shards`` shards, then again after one
   file changed (1,000 records edited, 1,000 appended), each in a fresh process: time and peak memory (target: under
   2 GB for both).

Usage: ``python benchmarks/million_samples.py [--samples N] [--shards S] [--workdir DIR] [--repeat R]
[--skip-selection] [--pool-only]``
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import zstandard as zstd

from entropy_assets.compression import default_threads, make_compressor
from entropy_assets.entropy_law import law_ratio
from entropy_assets.records import canonical_text, detect_format
from entropy_assets.scoring import read_shard, score_samples, write_shard_ordered
from entropy_assets.selection.baselines import BaselineConfig, baseline_select
from entropy_assets.selection.hierarchical import HierarchicalConfig, hierarchical_zip_select
from entropy_assets.selection.zip import ZipConfig
from entropy_assets.sources import load_pool, write_pool
from entropy_assets.stages import Workspace, build_pool
from entropy_assets.storage import Storage

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
RECORDS_PER_FILE = 20_000
BUILD_VERSION = 1
"""Bump when the recombinations change, so that a cached pool is rebuilt."""

SPAWN = multiprocessing.get_context("spawn")

ROLE_LINE = re.compile(r"\n(?=(?:user|assistant|system|chosen|rejected|function_call|observation|tools): )")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
KIND_WEIGHTS: dict[str, float] = {
    "multi_turn": 0.30,
    "messages": 0.15,
    "swapped": 0.15,
    "grounded": 0.15,
    "splice": 0.25,
}


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Max RSS of this process (or of its largest waited-for child) in MB."""
    return resource.getrusage(who).ru_maxrss / 1024


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a new spawned process: its max RSS is the phase's alone."""
    with ProcessPoolExecutor(1, mp_context=SPAWN) as executor:
        return executor.submit(function, *args).result()


# --- building the pool's files ------------------------------------------------------------------------------


@dataclass
class Parts:
    """The raw data cut into reusable parts: distinct records, instruction/response pairs, document sentences."""

    records: list[str]
    pairs: list[tuple[str, str]]
    documents: list[list[str]]


def raw_parts() -> Parts:
    """Distinct raw records (as JSON lines), their user/assistant pairs, and the sentences of each text document."""
    pool = load_pool(RAW, skip_malformed=True).frame.unique("content_hash", keep="first", maintain_order=True)
    pairs: dict[tuple[str, str], None] = {}
    documents: list[list[str]] = []
    for text, fmt in pool.select("text", "format").iter_rows():
        if fmt == "text":
            sentences = [s for s in SENTENCE_END.split(text) if 20 <= len(s) <= 600]
            if len(sentences) >= 4:
                documents.append(sentences)
            continue
        turns = [turn.split(": ", 1) for turn in ROLE_LINE.split(text)]
        for (role, content), (next_role, answer) in itertools.pairwise(turns):
            if role == "user" and next_role in ("assistant", "chosen") and answer.strip():
                pairs[(content, answer)] = None
    return Parts(pool["record"].to_list(), list(pairs), documents)


class Recombiner:
    """Seeded recombinations of the raw parts into new records of several formats."""

    def __init__(self, parts: Parts, seed: int) -> None:
        self.pairs = parts.pairs
        self.documents = parts.documents
        self.rng = np.random.default_rng(seed)

    def record(self, kind: str) -> dict[str, Any]:
        make = getattr(self, f"_{kind}")
        return make()

    def _pair(self) -> tuple[str, str]:
        return self.pairs[int(self.rng.integers(len(self.pairs)))]

    def _passage(self, low: int, high: int) -> str:
        """Consecutive sentences of one document."""
        sentences = self.documents[int(self.rng.integers(len(self.documents)))]
        count = int(self.rng.integers(low, high + 1))
        start = int(self.rng.integers(max(1, len(sentences) - count)))
        return " ".join(sentences[start : start + count])

    def _multi_turn(self) -> dict[str, Any]:
        turns = []
        for _ in range(int(self.rng.integers(2, 5))):
            prompt, answer = self._pair()
            turns += [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
        return {"conversations": turns}

    def _messages(self) -> dict[str, Any]:
        messages = []
        for _ in range(int(self.rng.integers(1, 4))):
            prompt, answer = self._pair()
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return {"messages": messages}

    def _swapped(self) -> dict[str, Any]:
        (prompt, _), (_, answer) = self._pair(), self._pair()
        return {"instruction": prompt, "input": "", "output": answer}

    def _grounded(self) -> dict[str, Any]:
        (prompt, answer) = self._pair()
        return {"instruction": prompt, "input": self._passage(2, 6), "output": answer}

    def _splice(self) -> dict[str, Any]:
        parts = int(self.rng.integers(2, 4))
        return {"text": " ".join(self._passage(2, 6) for _ in range(parts))}


def content_hash(record: dict[str, Any]) -> bytes:
    """The hash ``load_pool`` gives the record's canonical text."""
    return hashlib.blake2b(canonical_text(record, detect_format(record)).encode("utf-8"), digest_size=16).digest()


def pool_lines(parts: Parts, samples: int, seed: int, kinds: Counter[str]) -> Iterator[bytes]:
    """``samples`` JSON lines with distinct canonical texts: raw records first, then recombinations."""
    seen: set[bytes] = set()
    rng = np.random.default_rng(seed)
    originals = min(len(parts.records), samples // 16)
    for position in sorted(rng.choice(len(parts.records), originals, replace=False).tolist()):
        record = orjson.loads(parts.records[position])
        seen.add(content_hash(record))
        kinds["raw record"] += 1
        yield orjson.dumps(record) + b"\n"
    recombiner = Recombiner(parts, seed + 1)
    names, weights = list(KIND_WEIGHTS), np.array(list(KIND_WEIGHTS.values()))
    while len(seen) < samples:
        for kind in rng.choice(names, size=min(65536, samples - len(seen)), p=weights / weights.sum()):
            record = recombiner.record(str(kind))
            key = content_hash(record)
            if key not in seen:
                seen.add(key)
                kinds[str(kind)] += 1
                yield orjson.dumps(record) + b"\n"


def build_files(folder: str, samples: int, seed: int) -> dict[str, Any]:
    """Write the pool's JSONL files into ``folder`` (made whole, then renamed into place)."""
    started = time.perf_counter()
    parts = raw_parts()
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    kinds: Counter[str] = Counter()
    handle = None
    for index, line in enumerate(pool_lines(parts, samples, seed, kinds)):
        if index % RECORDS_PER_FILE == 0:
            if handle:
                handle.close()
            handle = open(tmp / f"pool_{index // RECORDS_PER_FILE:03d}.jsonl", "wb")  # noqa: SIM115
        handle.write(line)
    if handle:
        handle.close()
    manifest = {
        "samples": samples,
        "seed": seed,
        "version": BUILD_VERSION,
        "parts": {"raw records": len(parts.records), "pairs": len(parts.pairs), "documents": len(parts.documents)},
        "kinds": dict(kinds.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
        "peak_mb": round(peak_mb()),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return manifest


# --- phases ------------------------------------------------------------------------------------------------


def load_phase(folder: str, pool_file: str, shard_file: str, shards: int) -> dict[str, Any]:
    """Load the JSONL files into a pool and store it as parquet, and as the shard-ordered copy that the pipeline's
    ``pool`` writes for scoring when it is sharded."""
    started = time.perf_counter()
    loaded = load_pool(sorted(Path(folder).glob("pool_*.jsonl")))
    load_s = time.perf_counter() - started
    load_peak = peak_mb()
    pool = loaded.frame
    started = time.perf_counter()
    write_pool(pool, pool_file)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    write_shard_ordered(pool, shards, shard_file)
    return {
        "samples": pool.height,
        "distinct": pool["content_hash"].n_unique(),
        "bytes": int(pool["n_bytes"].sum()),
        "formats": loaded.report.formats,
        "dropped": loaded.report.dropped,
        "load_s": load_s,
        "load_peak_mb": load_peak,
        "write_s": write_s,
        "shard_write_s": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "file_mb": os.path.getsize(pool_file) / 1e6,
        "median_bytes": pool["n_bytes"].median(),
    }


def pipeline_pool_phase(data: str, store: str, shards: int) -> dict[str, Any]:
    """The ``pool`` asset's step, ``build_pool``, over the data folder: a first build parses every file; on a storage
    that holds an earlier version's parts, only what changed."""
    started = time.perf_counter()
    pool = build_pool(Workspace("million", Storage(store)), [data], shards=shards)
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "records": pool.records_kept,
        "files": pool.files,
        "files_parsed": pool.files_parsed,
        "records_parsed": pool.records_parsed,
        "version": pool.version,
    }


def linked_data(folder: Path, data: Path) -> None:
    """``data``: links to the pool's JSONL files (the records' folder also holds a manifest, not data)."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    for file in sorted(folder.glob("pool_*.jsonl")):
        (data / file.name).symlink_to(file)


def change_one_file(data: Path) -> str:
    """Replace the last of ``data``'s links by a copy with its first 1,000 records edited and 1,000 appended."""
    last = sorted(data.glob("pool_*.jsonl"))[-1]
    lines = last.read_bytes().splitlines(keepends=True)
    edited = [
        orjson.dumps({"text": f"record {i}, replaced after the first build by this document."}) + b"\n"
        if i < 1000
        else line
        for i, line in enumerate(lines)
    ]
    added = [
        orjson.dumps({"text": f"an appended document, number {i}, written after the first build."}) + b"\n"
        for i in range(1000)
    ]
    last.unlink()
    last.write_bytes(b"".join(edited + added))
    return f"{last.name}: 1,000 of its records edited, 1,000 appended"


def score_shard(pool_file: str, shard: int, shards: int, level: int, threads: int | None) -> dict[str, Any]:
    """One partition's work: read its shard of the pool file and score it (level < 1: raw zstd batch call)."""
    started = time.perf_counter()
    frame = read_shard(pool_file, shard, shards)
    read_s = time.perf_counter() - started
    if level >= 1:
        score_samples(frame, make_compressor("zstd", level), threads=threads)
    else:
        cctx = zstd.ZstdCompressor(level=level, write_checksum=False, write_content_size=False)
        frames = cctx.multi_compress_to_buffer(frame["text"].cast(pl.Binary).to_list(), threads=threads or 1)
        np.fromiter((len(frames[i]) for i in range(len(frames))), dtype=np.int64, count=len(frames))
    return {
        "samples": frame.height,
        "bytes": int(frame["n_bytes"].sum()),
        "read_s": read_s,
        "score_s": time.perf_counter() - started - read_s,
        "peak_mb": peak_mb(),
    }


@dataclass(frozen=True)
class ScoringRun:
    """One way of scoring the whole pool."""

    label: str
    level: int
    processes: int
    threads: int | None


SCORING_RUNS: tuple[ScoringRun, ...] = (
    ScoringRun("zstd 3 (default), 2 processes x 1 thread", 3, 2, 1),
    ScoringRun("zstd 3 (default), 2 processes x 2 threads", 3, 2, None),
    ScoringRun("zstd 3 (default), 1 process  x 2 threads", 3, 1, 2),
    ScoringRun("zstd 3 (default), 1 process  x 1 thread", 3, 1, 1),
    ScoringRun("zstd 1,           2 processes x 1 thread", 1, 2, 1),
    ScoringRun("raw zstd -1,      2 processes x 1 thread", -1, 2, 1),
)


def score_pool(executor: Executor, pool_file: str, shards: int, run: ScoringRun) -> tuple[float, list[dict[str, Any]]]:
    """Wall time of scoring every shard of the pool on ``executor``, and each shard's figures."""
    started = time.perf_counter()
    futures = [
        executor.submit(score_shard, pool_file, shard, shards, run.level, run.threads) for shard in range(shards)
    ]
    results = [future.result() for future in futures]
    return time.perf_counter() - started, results


def scoring_phase(pool_file: str, shards: int, repeat: int) -> dict[str, Any]:
    """Every scoring run ``repeat`` times, interleaved so that they share the machine's conditions."""
    executors = {n: ProcessPoolExecutor(n, mp_context=SPAWN) for n in (1, 2)}
    for n, executor in executors.items():
        list(executor.map(time.sleep, [1.0] * n))  # start every worker before timing
    walls: dict[ScoringRun, list[float]] = {run: [] for run in SCORING_RUNS}
    shard_figures: dict[ScoringRun, list[dict[str, Any]]] = {}
    worker_peak = {n: 0.0 for n in executors}
    for _ in range(repeat):
        for run in SCORING_RUNS:
            wall, results = score_pool(executors[run.processes], pool_file, shards, run)
            walls[run].append(wall)
            shard_figures[run] = results
            worker_peak[run.processes] = max(worker_peak[run.processes], *(r["peak_mb"] for r in results))
    for executor in executors.values():
        executor.shutdown()
    return {"walls": walls, "shards": shard_figures, "worker_peak_mb": worker_peak, "peak_mb": peak_mb()}


def zlib9_ratio(pool: pl.DataFrame, positions: Any) -> float:
    """R, the entropy law's ratio (zlib-9) of the selected samples' canonical text."""
    return law_ratio(pool["text"].gather(positions).to_list())


def selection_phase(pool_file: str, shards: int, budget: int) -> dict[str, Any]:
    """Hierarchical ZIP over the stored pool, and the chosen and a random set's zlib-9 ratios."""
    started = time.perf_counter()
    pool = pl.read_parquet(pool_file, columns=["id", "text", "n_bytes", "content_hash"])
    read_s = time.perf_counter() - started
    config = HierarchicalConfig(zip=ZipConfig(budget=budget, k1=10000, k2=200, k3=100), shards=shards)
    started = time.perf_counter()
    selection = hierarchical_zip_select(pool, config)
    select_s = time.perf_counter() - started
    select_peak = peak_mb()
    random = baseline_select(pool, BaselineConfig(method="random", budget=len(selection.positions), seed=0))
    return {
        "read_s": read_s,
        "seconds": select_s,
        "summary": selection.summary,
        "processes": config.processes or default_threads(),
        "zip_ratio": zlib9_ratio(pool, selection.positions),
        "random_ratio": zlib9_ratio(pool, random.positions),
        "selected_mb": int(pool["n_bytes"].gather(selection.positions).sum()) / 1e6,
        "peak_mb": select_peak,
        "children_peak_mb": peak_mb(resource.RUSAGE_CHILDREN),
    }


# --- report ------------------------------------------------------------------------------------------------


def pool_phases(workdir: Path, folder: Path, shards: int, load: dict[str, Any]) -> None:
    """The pipeline's ``pool`` step over the files, built, then updated after one file changed (each in a fresh
    process), beside the whole-pool load above."""
    store = workdir / "pipeline-store"
    shutil.rmtree(store, ignore_errors=True)
    data = workdir / "pool-data"
    linked_data(folder, data)
    built = in_fresh_process(pipeline_pool_phase, str(data), str(store), shards)
    change = change_one_file(data)
    updated = in_fresh_process(pipeline_pool_phase, str(data), str(store), shards)
    print(f"\npool step (build_pool, {shards} shards: the pool folder, its shard-ordered copy and fingerprints):")
    for name, phase in (("build", built), (f"update after a change ({change})", updated)):
        print(
            f"  {name}: {phase['seconds']:.1f} s, peak RSS {phase['peak_mb']:,.0f} MB; {phase['records']:,} records "
            f"from {phase['files']} files, parsed {phase['files_parsed']} file(s), {phase['records_parsed']:,} records"
        )
    print(
        f"  targets: peak under 2,000 MB: build {verdict(built['peak_mb'] < 2000)}, update "
        f"{verdict(updated['peak_mb'] < 2000)}; whole-pool load_pool above: peak {load['peak_mb']:,.0f} MB"
    )
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="distinct samples in the pool")
    parser.add_argument("--shards", type=int, default=16, help="content-hash shards for scoring and selection")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "entropy_million"))
    parser.add_argument("--repeat", type=int, default=3, help="passes of each scoring run (the median is quoted)")
    parser.add_argument("--budget", type=int, default=50_000, help="samples hierarchical ZIP selects")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-selection", action="store_true", help="load and scoring only")
    parser.add_argument("--pool-only", action="store_true", help="the pool phases only (load, and the pool step)")
    args = parser.parse_args(argv)
    if not RAW.is_dir():
        print(f"no raw data under {RAW}", file=sys.stderr)
        return 1
    workdir = Path(args.workdir)
    folder = workdir / f"records-{args.samples}-seed{args.seed}-v{BUILD_VERSION}"
    pool_file = str(workdir / f"pool-{args.samples}-seed{args.seed}-v{BUILD_VERSION}.parquet")
    shard_file = pool_file.replace(".parquet", f".shards{args.shards}.parquet")
    print(f"million-sample benchmark: {args.samples:,} samples, {args.shards} shards, {os.cpu_count()} cores")

    manifest_file = folder / "manifest.json"
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        print(f"records: reusing {folder} (built in {manifest['seconds']} s)")
    else:
        manifest = in_fresh_process(build_files, str(folder), args.samples, args.seed)
        print(f"records: built {folder} in {manifest['seconds']} s, peak {manifest['peak_mb']:,} MB")
    parts = manifest["parts"]
    print(
        f"  from {parts['raw records']:,} distinct raw records, {parts['pairs']:,} instruction/response pairs, "
        f"{parts['documents']} C4/Wikipedia documents; kinds: "
        + ", ".join(f"{kind} {count:,}" for kind, count in manifest["kinds"].items())
    )

    load = in_fresh_process(load_phase, str(folder), pool_file, shard_file, args.shards)
    mean = load["bytes"] / load["samples"]
    print(
        f"\nload: load_pool of {load['samples']:,} records ({load['distinct']:,} distinct) in {load['load_s']:.1f} s, "
        f"peak RSS {load['load_peak_mb']:,.0f} MB; write_pool {load['write_s']:.1f} s "
        f"({load['file_mb']:,.0f} MB parquet), shard-ordered copy {load['shard_write_s']:.1f} s, "
        f"phase peak {load['peak_mb']:,.0f} MB"
    )
    print(
        f"  {load['bytes'] / 1e6:,.1f} MB of canonical text, mean {mean:,.0f} B/sample, "
        f"median {load['median_bytes']:,.0f} B; formats "
        + ", ".join(f"{fmt} {count:,}" for fmt, count in load["formats"].items())
    )

    pool_phases(workdir, folder, args.shards, load)
    if args.pool_only:
        return 0

    scoring = in_fresh_process(scoring_phase, shard_file, args.shards, args.repeat)
    total_mb = load["bytes"] / 1e6
    print(
        f"\nscoring: read_shard (of the shard-ordered copy) + score_samples per shard ({args.shards} shards), "
        f"median of {args.repeat} "
        f"pass(es) over {total_mb:,.1f} MB, warm workers"
    )
    print(f"  {'run':<44}{'wall s':>8}{'MB/s':>8}{'samples/s':>11}{'read %':>8}{'score-only':>12}   passes (s)")
    best_default = 0.0
    for run, walls in scoring["walls"].items():
        wall = statistics.median(walls)
        shards = scoring["shards"][run]
        read_s, score_s = (sum(r[key] for r in shards) for key in ("read_s", "score_s"))
        print(
            f"  {run.label:<44}{wall:>8.2f}{total_mb / wall:>8.1f}{load['samples'] / wall:>11,.0f}"
            f"{read_s / (read_s + score_s) * 100:>7.0f}%{total_mb / score_s:>12.1f}   "
            + ", ".join(f"{w:.2f}" for w in walls)
        )
        if run.level == 3:
            best_default = max(best_default, total_mb / wall)
    print(
        "  (MB/s and samples/s: pool bytes over the wall time; read %: workers' time in read_shard; score-only: "
        "MB per second of one worker's score_samples time)"
    )
    worker_peak = max(scoring["worker_peak_mb"].values())
    print(
        f"  peak RSS: largest scoring worker {worker_peak:,.0f} MB "
        f"(2-process runs {scoring['worker_peak_mb'][2]:,.0f}, 1-process {scoring['worker_peak_mb'][1]:,.0f}); "
        f"phase parent {scoring['peak_mb']:,.0f} MB"
    )

    if args.skip_selection:
        print(f"\ntargets: scoring {best_default:.1f} MB/s at the default level vs 150; selection skipped")
        return 0
    selection = in_fresh_process(selection_phase, pool_file, args.shards, args.budget)
    summary = selection["summary"]
    print(
        f"\nselection: hierarchical ZIP, budget {args.budget:,} (K1=10000, K2=200, K3=100), {args.shards} shards "
        f"keeping 2x their share, {selection['processes']} processes"
    )
    print(
        f"  {selection['seconds']:.1f} s (shards {summary['shard_seconds']:.1f} s, final pass over the union "
        f"{selection['seconds'] - summary['shard_seconds']:.1f} s); union {summary['union_size']:,}; "
        f"selected {summary['selected']:,} ({selection['selected_mb']:.1f} MB); pool read {selection['read_s']:.1f} s"
    )
    print(
        f"  zlib-9 ratio: ZIP {selection['zip_ratio']:.4f}, random {selection['random_ratio']:.4f} "
        f"({(selection['zip_ratio'] / selection['random_ratio'] - 1) * 100:+.1f}%)"
    )
    print(
        f"  peak RSS: selecting process {selection['peak_mb']:,.0f} MB, "
        f"largest shard worker {selection['children_peak_mb']:,.0f} MB"
    )

    print(
        f"\ntargets: scoring {best_default:.1f} MB/s at the default level vs 150 ({verdict(best_default >= 150)}); "
        f"scoring peak {worker_peak:,.0f} MB vs 4,000 ({verdict(worker_peak < 4000)}); "
        f"selection {selection['seconds']:.0f} s vs 300 ({verdict(selection['seconds'] < 300)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
