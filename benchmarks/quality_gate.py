"""Does noise fool the selection, with and without the quality gate (issue 29)?

The pool: ``alpaca52k_en_part01_00000-03252.json`` and ``code_alpaca_2k.json`` from ``../shared/data/raw`` (5,269
records), plus 2% noise records: copies of other real Alpaca records whose ``output`` carries machine noise of
512 B to 4 KiB (log-uniform), one kind per pool:

- ``base64``: an encoded attachment on one line; ``base64_mime``: the same wrapped at 76 characters;
- ``hexdump``: ``xxd``-style lines (offset, hex words, ASCII column); ``hex``: one hex string;
- ``random``: random printable ASCII characters; and, beyond the issue's kinds, ``mojibake`` (random bytes read
  as Latin-1) and ``random_unicode`` (random code points below U+3000).

For each pool: ``zip``, ``zip_paper`` and ``zip_hierarchical`` (8 shards) at 300 (K1=1000, K2=100, K3=50) and
``random`` (the mean of 3 seeds), gate off and on: noise records in the subset and its zlib-9 ratio. Then the same
methods on the real records alone (R with the gate against R without it: the product before the gate), the gate's
exclusions and detection on each kind, and (``--million``) the gate's cost at one million samples beside scoring's,
each measured in a fresh process (peak = max RSS). ``--figure PATH`` draws the README's figure; ``--raw`` runs
every file of the raw data through the gate and lists what it excluded.

Targets: with the gate, each method holds no more noise than the pool's share and keeps its ratio below random's;
without noise, each method's R within 2% of the ungated R; at least 99% of planted noise records excluded.

Usage: ``python benchmarks/quality_gate.py [--kinds base64 hex random] [--million] [--figure docs/quality_gate.png]``
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from entropy_assets.compression import make_compressor
from entropy_assets.entropy_law import law_ratio
from entropy_assets.noise import NOISE_KINDS, noisy_records
from entropy_assets.quality import DEFAULT, OFF, QualitySettings
from entropy_assets.scoring import gated_samples, score_samples
from entropy_assets.selection import methods
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.sources import load_pool

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
FILES = ("alpaca52k_en_part01_00000-03252.json", "code_alpaca_2k.json")
NOISE_SOURCE = "alpaca52k_en_part02_03252-06382.json"
KINDS = NOISE_KINDS
METHODS = ("zip", "zip_paper", "zip_hierarchical")
OPTIONS = SelectionOptions(budget=300, k1=1000, k2=100, k3=50, shards=8)
NOISE_SHARE = 0.02


def noise_records(kind: str, count: int, seed: int = 0) -> list[dict[str, str]]:
    """``count`` real Alpaca records (not in the pool's files) whose output carries noise of ``kind``."""
    records = json.loads((RAW / NOISE_SOURCE).read_text())
    return noisy_records(random.Random(seed).sample(records, count), kind, "output", seed=seed)


def pool_with_noise(kind: str | None, folder: Path) -> tuple[pl.DataFrame, set[str]]:
    """The pool's real records, with 2% noise records of ``kind`` (none for None), and the noise records' ids."""
    paths = [RAW / name for name in FILES]
    if kind is not None:
        real = load_pool(paths).frame.height
        count = round(real * NOISE_SHARE / (1 - NOISE_SHARE))
        noisy = folder / f"noise_{kind}.json"
        noisy.write_text(json.dumps(noise_records(kind, count), ensure_ascii=False))
        paths.append(noisy)
    frame = load_pool(paths).frame
    planted = set(frame.filter(pl.col("source").str.ends_with(f"noise_{kind}.json"))["id"].to_list())
    return frame, planted


def subset_figures(pool: pl.DataFrame, planted: set[str], method: str, seed: int = 0) -> tuple[int, float]:
    """Noise records in ``method``'s subset of ``pool``, and the subset's zlib-9 ratio."""
    options = SelectionOptions(**{**OPTIONS.__dict__, "seed": seed})
    selection = methods.select(pool, method_config(method, options))
    chosen = pool[selection.positions]
    return int(chosen["id"].is_in(list(planted)).sum()), law_ratio(chosen["text"].to_list())


def offered(pool: pl.DataFrame, quality: QualitySettings) -> pl.DataFrame:
    """The pool's samples the gate offers to selection (as the pipeline's subset step does)."""
    return pool.filter(gated_samples(pool, quality)["excluded"].is_null())


def compare(pool: pl.DataFrame, planted: set[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """For gate off and on: each method's noise records and ratio (random: the mean of 3 seeds)."""
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    for gate, quality in (("off", OFF), ("on", DEFAULT)):
        candidates = offered(pool, quality)
        rows = {method: subset_figures(candidates, planted, method) for method in METHODS}
        draws = [subset_figures(candidates, planted, "random", seed) for seed in range(3)]
        rows["random"] = (statistics.mean(d[0] for d in draws), statistics.mean(d[1] for d in draws))
        figures[gate] = {method: (float(n), r) for method, (n, r) in rows.items()}
    return figures


def gate_cost(samples: int) -> dict[str, dict[str, float]]:
    """Time and peak memory of scoring and of the gate's signals on ``samples`` samples, each in a fresh process."""
    out = {}
    for phase in ("scores", "gate"):
        command = [sys.executable, __file__, "--phase", phase, "--samples", str(samples)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        out[phase] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def run_phase(phase: str, samples: int) -> None:
    """One phase of ``gate_cost``, in this process: prints its seconds and peak memory as JSON."""
    frame = load_pool(sorted(RAW.glob("alpaca52k_en_part*.json"))).frame.select("id", "content_hash", "n_bytes", "text")
    copies = -(-samples // frame.height)
    frame = pl.concat(
        [frame.with_columns(id=pl.col("id") + f"#{i}", content_hash=pl.col("content_hash")) for i in range(copies)]
    ).head(samples)
    started = time.perf_counter()
    if phase == "scores":
        score_samples(frame, make_compressor("zstd"))
    else:
        gated_samples(frame, DEFAULT)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"samples": frame.height, "seconds": round(seconds, 2), "peak_mb": round(peak)}))


def detection(kinds: tuple[str, ...], folder: Path) -> None:
    """The gate's exclusions on the real records, and its detection of each kind of noise (500 records each)."""
    real = load_pool([RAW / name for name in FILES]).frame
    print(
        f"\nreal records excluded: {int(gated_samples(real, DEFAULT)['excluded'].is_not_null().sum())} of {real.height}"
    )
    print("| noise kind | planted | excluded | by reason |\n|---|---|---|---|")
    for kind in kinds:
        path = folder / f"detect_{kind}.json"
        path.write_text(json.dumps(noise_records(kind, 500, seed=7), ensure_ascii=False))
        gated = gated_samples(load_pool([path]).frame, DEFAULT)
        reasons = gated["excluded"].drop_nulls().value_counts().sort("count", descending=True).rows()
        print(f"| {kind} | 500 | {int(gated['excluded'].is_not_null().sum())} | {dict(reasons)} |")


def raw_files() -> None:
    """Every file of the raw data through the gate: records read and excluded, and each excluded record."""
    print("\n| file | records | excluded | share |\n|---|---|---|---|")
    shown = []
    for path in sorted(RAW.iterdir()):
        try:
            frame = load_pool([path]).frame
        except Exception as error:  # a file the readers refuse is reported, not judged
            print(f"| {path.name} | not read: {str(error)[:80]} | | |")
            continue
        gated = gated_samples(frame, DEFAULT).with_columns(text=frame["text"])
        excluded = gated.filter(pl.col("excluded").is_not_null())
        print(f"| {path.name} | {frame.height:,} | {excluded.height} | {excluded.height / frame.height:.2%} |")
        shown.extend(excluded.head(3).iter_rows(named=True))
    print("\nexcluded records (at most three of each file):")
    for row in shown:
        text = row["text"][:110].replace("\n", " ")
        print(f"- `{row['id']}` {row['excluded']} {row['excluded_value']:.3g}: {text!r}")


def draw(results: dict[str, dict[str, dict[str, tuple[float, float]]]], path: Path) -> None:
    """The README's figure: noise records in each method's subset of 300, gate off and on, per kind of noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / (len(METHODS) + 1)
    for ax, gate in zip(axes, ("off", "on"), strict=True):
        for i, method in enumerate((*METHODS, "random")):
            shares = [100 * results[kind][gate][method][0] / OPTIONS.budget for kind in kinds]
            ax.bar([k + i * width for k in range(len(kinds))], shares, width, label=method)
        ax.axhline(100 * NOISE_SHARE, color="black", linestyle="--", linewidth=1, label="pool's share (2%)")
        ax.set_xticks([k + 1.5 * width for k in range(len(kinds))], kinds, rotation=20)
        ax.set_title(f"quality gate {gate}")
        ax.set_ylabel("noise records in the subset (%)")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.suptitle("What a subset of 300 holds when 2% of the pool carries machine noise")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nfigure: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--million", action="store_true", help="also measure the gate's cost at a million samples")
    parser.add_argument("--figure", type=Path, help="draw the figure of noise in subsets to this PNG")
    parser.add_argument(
        "--raw", action="store_true", help="only: every raw file through the gate, and what it excluded"
    )
    parser.add_argument("--phase", choices=("scores", "gate"), help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=1_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        run_phase(args.phase, args.samples)
        return 0
    if not RAW.is_dir():
        print(f"no raw data under {RAW}", file=sys.stderr)
        return 1
    if args.raw:
        raw_files()
        return 0
    results: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        clean, _ = pool_with_noise(None, folder)
        print(f"real records: {clean.height:,}; subsets of {OPTIONS.budget} (K1={OPTIONS.k1}, K2={OPTIONS.k2}, "
              f"K3={OPTIONS.k3}); random: mean of 3 seeds")  # fmt: skip
        print("\n| pool | method | noise off | noise on | R off | R on | random R off / on |")
        print("|---|---|---|---|---|---|---|")
        for kind in args.kinds:
            pool, planted = pool_with_noise(kind, folder)
            results[kind] = compare(pool, planted)
            off, on = results[kind]["off"], results[kind]["on"]
            for method in METHODS:
                print(
                    f"| {kind} ({len(planted)} of {pool.height:,}) | {method} | {off[method][0]:.0f} | "
                    f"{on[method][0]:.0f} | {off[method][1]:.4f} | {on[method][1]:.4f} | "
                    f"{off['random'][1]:.4f} / {on['random'][1]:.4f} (noise {off['random'][0]:.1f} / "
                    f"{on['random'][0]:.1f}) |"
                )
        plain = compare(clean, set())
        print("\nwithout noise: R with the gate against R without it")
        print("| method | R off | R on | change |\n|---|---|---|---|")
        for method in (*METHODS, "random"):
            before, after = plain["off"][method][1], plain["on"][method][1]
            print(f"| {method} | {before:.4f} | {after:.4f} | {100 * (after / before - 1):+.2f}% |")
        detection(tuple(args.kinds), folder)
    if args.million:
        cost = gate_cost(1_000_000)
        print("\none million samples (Alpaca records tiled), each phase in a fresh process:")
        for phase, figures in cost.items():
            print(f"  {phase}: {figures['seconds']} s, peak {figures['peak_mb']} MB")
    if args.figure:
        draw(results, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
