"""The ``entropy-assets`` command line: ``select``, ``score`` and ``ratio``.

``select`` accepts the published ZIP program's flags (``--data_path --save_path --budget --k1 --k2 --k3
--n_jobs``), so it is a drop-in replacement: a ShareGPT JSON list in, the selected records as a JSON list in the
same form out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from entropy_assets.compression import COMPRESSORS, default_threads, join_samples, make_compressor
from entropy_assets.records import FORMATS
from entropy_assets.selection.base import BUDGET_UNITS, Selection
from entropy_assets.selection.baselines import BASELINES, BaselineConfig, baseline_select
from entropy_assets.selection.zip import ZIP_MODES, ZipConfig, zip_select
from entropy_assets.sources import LoadedPool, SourceError, load_pool, write_atomically, write_records

METHODS: tuple[str, ...] = ("zip", *BASELINES)


def _flag(parser: argparse.ArgumentParser, name: str, **options: Any) -> None:
    """Add ``--name`` with both spellings: the published program's underscores and dashes."""
    dashed = name.replace("_", "-")
    spellings = [f"--{name}"] if dashed == name else [f"--{name}", f"--{dashed}"]
    parser.add_argument(*spellings, dest=name, **options)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, help="record format (default: detected per record)")
    _flag(parser, "skip_malformed", action="store_true", help="skip and count bad records instead of failing")


def _add_compressor_options(parser: argparse.ArgumentParser, default: str | None = "zstd") -> None:
    parser.add_argument(
        "--compressor", choices=COMPRESSORS, default=default, help=f"(default: {default or 'zstd; zlib in paper mode'})"
    )
    parser.add_argument("--level", type=int, help="compression level (default: zstd 3, zlib 9, lzma 6)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, for ``main`` and for documentation."""
    parser = argparse.ArgumentParser(prog="entropy-assets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    select = commands.add_parser("select", help="select a subset by ZIP or a baseline")
    _flag(select, "data_path", required=True, nargs="+", help="files, folders or globs of records")
    _flag(select, "save_path", required=True, help="where to write the selected records (.json, .jsonl, .parquet)")
    select.add_argument("--budget", type=int, required=True, help="how many samples (or bytes) to select")
    _flag(select, "budget_unit", choices=BUDGET_UNITS, default="samples")
    select.add_argument("--k1", type=int, default=10000, help="stage 1: candidates re-scored per round")
    select.add_argument("--k2", type=int, default=200, help="stage 2: candidates kept for stage 3")
    select.add_argument("--k3", type=int, default=100, help="stage 3: samples chosen per round")
    _flag(select, "n_jobs", type=int, default=0, help="compression threads (default: all cores)")
    select.add_argument("--mode", choices=ZIP_MODES, default="default", help="ZIP semantics (paper: as published)")
    select.add_argument("--method", choices=METHODS, default="zip")
    select.add_argument("--seed", type=int, default=0)
    select.add_argument("--provenance", help="also write per-sample provenance to this parquet file")
    _add_compressor_options(select, default=None)
    _add_input_options(select)

    score = commands.add_parser("score", help="per-sample compression ratios to parquet")
    score.add_argument("data_path", nargs="+", help="files, folders or globs of records")
    score.add_argument("--output", "-o", required=True, help="parquet file to write")
    _add_compressor_options(score)
    _add_input_options(score)

    ratio = commands.add_parser("ratio", help="a dataset's compression ratio")
    ratio.add_argument("data_path", nargs="+", help="files, folders or globs of records")
    _add_compressor_options(ratio)
    _add_input_options(ratio)
    return parser


def _load(args: argparse.Namespace) -> LoadedPool:
    loaded = load_pool(args.data_path, fmt=args.format, skip_malformed=args.skip_malformed)
    if loaded.frame.is_empty():
        raise SourceError(f"no usable records in {', '.join(map(str, args.data_path))}")
    return loaded


def _run_select(args: argparse.Namespace) -> dict[str, Any]:
    # Settings are validated before any data is read.
    if args.method == "zip":
        compressor = args.compressor or ("zlib" if args.mode == "paper" else "zstd")
        config: ZipConfig | BaselineConfig = ZipConfig(
            budget=args.budget,
            k1=args.k1,
            k2=args.k2,
            k3=args.k3,
            mode=args.mode,
            compressor=compressor,
            level=args.level,
            budget_unit=args.budget_unit,
            seed=args.seed,
            n_jobs=args.n_jobs,
        )
    else:
        config = BaselineConfig(
            method=args.method,
            budget=args.budget,
            budget_unit=args.budget_unit,
            seed=args.seed,
            compressor=args.compressor or "zstd",
            level=args.level,
            n_jobs=args.n_jobs,
        )
    loaded = _load(args)
    pool = loaded.frame
    selection: Selection
    if isinstance(config, ZipConfig):
        total = config.budget if config.budget_unit == "samples" else None
        with tqdm(total=total, unit="sample", desc="ZIP", disable=None, file=sys.stderr) as bar:

            def progress(selected: int) -> None:
                bar.update(selected - bar.n)

            selection = zip_select(pool, config, progress)
    else:
        selection = baseline_select(pool, config)
    subset = selection.subset(pool)
    written = write_records(subset, args.save_path)
    if args.provenance:
        write_atomically(Path(args.provenance), selection.provenance.write_parquet)
    evaluator = make_compressor("zlib", 9)
    texts = [t.encode("utf-8") for t in subset["text"].to_list()]
    return {
        "method": selection.method,
        "saved": str(written),
        "selected": len(selection),
        "selected_bytes": selection.summary["selected_bytes"],
        "set_ratio_zlib9": round(evaluator.ratio(join_samples(texts)), 4),
        "seconds": selection.summary["seconds"],
        "config": selection.config,
        "input": loaded.report.to_dict(),
    }


def _run_score(args: argparse.Namespace) -> dict[str, Any]:
    compressor = make_compressor(args.compressor, args.level)
    loaded = _load(args)
    pool = loaded.frame
    sizes = compressor.compressed_sizes([t.encode("utf-8") for t in pool["text"].to_list()], default_threads())
    scores = pool.select("id", "source", "index", "format", "n_bytes", "content_hash").with_columns(
        compressed_bytes=pl.Series(sizes, dtype=pl.Int64),
    )
    scores = scores.with_columns(ratio=pl.col("n_bytes") / pl.col("compressed_bytes"))
    write_atomically(Path(args.output), scores.write_parquet)
    return {
        "saved": args.output,
        "samples": scores.height,
        "mean_ratio": round(float(scores["ratio"].mean()), 4),
        "compressor": compressor.describe(),
        "input": loaded.report.to_dict(),
    }


def _run_ratio(args: argparse.Namespace) -> dict[str, Any]:
    compressor = make_compressor(args.compressor, args.level)
    loaded = _load(args)
    data = join_samples([t.encode("utf-8") for t in loaded.frame["text"].to_list()])
    return {
        "samples": loaded.frame.height,
        "bytes": len(data),
        "ratio": round(compressor.ratio(data), 4),
        "compressor": compressor.describe(),
        "input": loaded.report.to_dict(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input or settings)."""
    args = build_parser().parse_args(argv)
    run = {"select": _run_select, "score": _run_score, "ratio": _run_ratio}[args.command]
    try:
        result = run(args)
    except (ValueError, OSError) as error:  # SourceError and RecordError are ValueErrors
        print(f"entropy-assets {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"entropy-assets {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
