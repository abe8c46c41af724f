"""entropy-assets: choose LLM training data by compression (ZIP, the Entropy Law) and read what Dagster recorded.

select takes the published ZIP program's flags (--data_path --save_path --budget --k1 --k2 --k3 --n_jobs) and
replaces it: a ShareGPT JSON list in, the chosen records out as a JSON list in the same form. score and ratio
measure records by compression. law prints the entropy law fitted on the training runs of a Dagster instance;
audit says what trained a run, how two subset versions differ and how R and L moved across data versions; prune
deletes old output versions. Each command prints a JSON summary or a report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from entropy_assets import __version__
from entropy_assets.comparison import compare_methods, comparison_text, is_random
from entropy_assets.composition import composition, facet_frame
from entropy_assets.compression import COMPRESSORS, default_threads, join_samples, make_compressor
from entropy_assets.diversity import ngram_diversity
from entropy_assets.entropy_law import law_ratio
from entropy_assets.quality import QualitySettings, exclusion_counts, quality_from_option, share, top_sources
from entropy_assets.records import FORMATS, ColumnMapping
from entropy_assets.scoring import gated_samples
from entropy_assets.selection import methods
from entropy_assets.selection.base import BUDGET_UNITS
from entropy_assets.selection.methods import METHODS, SelectionOptions, method_config
from entropy_assets.selection.stratified import STRATA, Stratify
from entropy_assets.selection.warm import WarmStart, write_provenance
from entropy_assets.selection.zip import ZIP_MODES, ZipConfig
from entropy_assets.sources import (
    LoadedPool,
    SourceColumns,
    SourceError,
    labels_column,
    load_pool,
    write_atomically,
    write_records,
)
from entropy_assets.stages.churn import churn


def _flag(parser: argparse.ArgumentParser, name: str, **options: Any) -> None:
    """Add ``--name`` with both spellings: the published program's underscores and dashes."""
    dashed = name.replace("_", "-")
    spellings = [f"--{name}"] if dashed == name else [f"--{name}", f"--{dashed}"]
    parser.add_argument(*spellings, dest=name, **options)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, help="record format (default: detected per record)")
    parser.add_argument(
        "--columns",
        metavar="ROLE=FIELD,...",
        help="which of the records' fields hold the canonical roles, and the tags of their conversations, e.g. "
        "prompt=Instruction,response=Output or messages=dialog,role_tag=speaker,content_tag=text,user_tag=client "
        "(roles: system, prompt, input, response, completion, messages, chosen, rejected, label, text, history, "
        "tools, completions, labels)",
    )
    _flag(parser, "skip_malformed", action="store_true", help="skip and count bad records instead of failing")


def _add_compressor_options(parser: argparse.ArgumentParser, default: str | None = "zstd") -> None:
    parser.add_argument(
        "--compressor", choices=COMPRESSORS, default=default, help=f"(default: {default or 'zstd; zlib in paper mode'})"
    )
    parser.add_argument("--level", type=int, help="compression level (default: zstd 3, zlib 9, lzma 6)")


QUALITY_THRESHOLDS = ("max_encoded_chars", "max_other_share", "min_relative_ratio")


def _add_quality_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quality",
        choices=("default", "off"),
        default="default",
        help="the quality gate: default keeps samples carrying machine noise (encoded runs, stray characters, "
        "incompressible text) out of the selection; off offers every sample, as the paper did",
    )
    fields = QualitySettings.model_fields
    for name in QUALITY_THRESHOLDS:
        field = fields[name]
        kind = int if field.annotation is int else float
        _flag(parser, f"quality_{name}", type=kind, help=f"{field.description} (default: {field.default})")


def _quality(args: argparse.Namespace) -> QualitySettings:
    given = {name: getattr(args, f"quality_{name}") for name in QUALITY_THRESHOLDS}
    overrides = {name: value for name, value in given.items() if value is not None}
    if overrides and args.quality == "off":
        raise ValueError("--quality off takes no thresholds")
    return quality_from_option(args.quality, overrides)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, for ``main`` and for documentation."""
    # The module's docstring is the help, in plain text: its first paragraph above the commands, the rest below.
    description, epilog = (__doc__ or "").split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="entropy-assets", description=description, epilog=epilog)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    select.add_argument("--method", choices=METHODS, default="zip", help="(zip with --mode paper is zip_paper)")
    select.add_argument("--seed", type=int, default=0)
    select.add_argument("--shards", type=int, default=8, help="zip_hierarchical: content-hash shards (default: 8)")
    select.add_argument("--provenance", help="also write per-sample provenance to this parquet file")
    select.add_argument(
        "--stratify",
        choices=STRATA,
        help="select within each source file, record format or script, each with a share of the budget proportional "
        "to its share of the data",
    )
    _flag(
        select,
        "warm_start",
        metavar="PREVIOUS.parquet",
        help="start from an earlier selection (its --provenance file): keep its samples still in the data, fill the "
        "freed budget, let new samples in",
    )
    _add_compressor_options(select, default=None)
    _add_input_options(select)
    _add_quality_options(select)

    score = commands.add_parser("score", help="per-sample compression ratios to parquet")
    score.add_argument("data_path", nargs="+", help="files, folders or globs of records")
    score.add_argument("--output", "-o", required=True, help="parquet file to write")
    _add_compressor_options(score)
    _add_input_options(score)

    ratio = commands.add_parser("ratio", help="a dataset's compression ratio")
    ratio.add_argument("data_path", nargs="+", help="files, folders or globs of records")
    _add_compressor_options(ratio)
    _add_input_options(ratio)

    law = commands.add_parser("law", help="the entropy law fitted on a Dagster instance's training runs")
    law.add_argument("--dagster-home", help="the instance's folder (default: $DAGSTER_HOME)")
    law.add_argument("--pipeline", help="the pipeline's name (default: every pipeline with training runs)")
    law.add_argument("--methods", nargs="+", help="fit only the runs of these methods (default: all)")
    law.add_argument("--level", type=float, default=0.95, help="confidence level of intervals (default: 0.95)")
    law.add_argument("--json", action="store_true", help="print JSON instead of the report")

    audit = commands.add_parser("audit", help="what trained a run, how subset versions differ, R and L history")
    audit.add_argument("question", choices=("run", "diff", "history"))
    audit.add_argument("--dagster-home", help="the instance's folder (default: $DAGSTER_HOME)")
    audit.add_argument("--pipeline", help="the pipeline's name (default: the only one in the instance)")
    audit.add_argument("--partition", help="run, diff: the partition (e.g. zip, or 150|zip)")
    audit.add_argument("--run-id", help="run: a Dagster run id (or its first characters)")
    audit.add_argument("--old", help="diff: the older subset version (default: the one before the newest)")
    audit.add_argument("--new", help="diff: the newer subset version (default: the newest)")
    audit.add_argument("--format", choices=("table", "markdown", "json"), default="table")

    prune = commands.add_parser("prune", help="delete old output versions (lists them unless --yes)")
    prune.add_argument("--keep", type=int, required=True, help="versions of each output (per partition) to keep")
    prune.add_argument("--dagster-home", help="the instance's folder (default: $DAGSTER_HOME)")
    prune.add_argument("--pipeline", help="the pipeline's name (default: the only one in the instance)")
    prune.add_argument("--yes", action="store_true", help="delete; without it, only list what would go")
    return parser


def _rounded(shares: Mapping[str, float]) -> dict[str, float]:
    return {name: round(share, 4) for name, share in shares.items()}


def _columns(args: argparse.Namespace) -> SourceColumns:
    return SourceColumns(ColumnMapping.parse(args.columns) if args.columns else None)


def _load(args: argparse.Namespace) -> LoadedPool:
    loaded = load_pool(args.data_path, fmt=args.format, skip_malformed=args.skip_malformed, columns=_columns(args))
    if loaded.frame.is_empty():
        raise SourceError(f"no usable records in {', '.join(map(str, args.data_path))}")
    return loaded


def _run_select(args: argparse.Namespace) -> dict[str, Any]:
    method = "zip_paper" if args.method == "zip" and args.mode == "paper" else args.method
    if method == "zip_paper" and ((args.compressor or "zlib") != "zlib" or args.level not in (None, 9)):
        raise ValueError("paper mode measures with zlib level 9: --compressor and --level can only be zlib and 9")
    options = SelectionOptions(
        budget=args.budget,
        budget_unit=args.budget_unit,
        k1=args.k1,
        k2=args.k2,
        k3=args.k3,
        compressor=args.compressor,
        level=args.level,
        seed=args.seed,
        n_jobs=args.n_jobs,
        shards=args.shards,
        stratify=Stratify(args.stratify) if args.stratify else None,
    )
    config = method_config(method, options)  # settings are validated before any data is read
    quality = _quality(args)
    warm = WarmStart.from_file(args.warm_start) if args.warm_start else None
    loaded = _load(args)
    gated = gated_samples(loaded.frame, quality)
    pool = loaded.frame.filter(gated["excluded"].is_null())
    rounds = isinstance(config, ZipConfig)  # ZIP reports its rounds: a progress bar on a terminal
    total = config.budget if rounds and config.budget_unit == "samples" else None
    with tqdm(total=total, unit="sample", desc="ZIP", disable=None if rounds else True, file=sys.stderr) as bar:

        def progress(selected: int) -> None:
            bar.update(selected - bar.n)

        selection = methods.select(pool, config, progress=progress, warm=warm)
    subset = selection.subset(pool)
    texts = subset["text"].to_list()
    diversity = ngram_diversity(texts, 2)
    provenance = selection.provenance.join(
        pool.select("id", "source", "index", "format", "n_bytes", "content_hash"), on="id", how="left"
    ).join(subset.select("id", labels_column(subset, _columns(args))), on="id", how="left")
    written = write_records(subset, args.save_path)
    if args.provenance:
        write_provenance(args.provenance, provenance, pool)
    churned: dict[str, Any] = {}
    if warm is not None:
        earlier = pl.DataFrame({"id": warm.ids, "content_hash": warm.content_hashes})
        change = churn(earlier, provenance, None, pool)
        churned = {"churn": {"kept": change.kept, "added": change.added, "removed": change.removed,
                             "by_reason": dict(change.by_reason)}, "warm": selection.summary.get("warm")}  # fmt: skip
    return {
        "method": selection.method,
        "saved": str(written),
        "selected": len(selection),
        "selected_bytes": selection.summary["selected_bytes"],
        "set_ratio_zlib9": round(law_ratio(texts), 4),
        "distinct_2": round(diversity.distinct, 4),
        "vendi_2gram": round(diversity.vendi, 2),
        "seconds": selection.summary["seconds"],
        "config": selection.config,
        **({"strata": selection.summary["strata"]} if "strata" in selection.summary else {}),
        "composition": {
            facet: {"distance": mixed.distance, "pool": _rounded(mixed.pool), "subset": _rounded(mixed.subset)}
            for facet, mixed in composition(facet_frame(pool), selection.positions).items()
        },
        **churned,
        "quality": _gate_summary(gated, quality),
        "input": loaded.report.to_dict(),
    }


def _gate_summary(gated: pl.DataFrame, quality: QualitySettings) -> dict[str, Any]:
    """What the quality gate kept out of the selection, by reason and by file."""
    excluded = exclusion_counts(gated)
    return {
        "gate": "on" if quality.enabled else "off",
        "excluded": excluded,
        "excluded_share": round(share(excluded, gated.height), 6),
        "excluded_sources": top_sources(gated),
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


def _instance(args: argparse.Namespace) -> Any:
    """The Dagster instance at ``--dagster-home`` or ``$DAGSTER_HOME``."""
    home = args.dagster_home or os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("no Dagster instance: pass --dagster-home or set DAGSTER_HOME")
    if not Path(home).is_dir():
        raise ValueError(f"{home}: no such Dagster home folder")
    from entropy_assets.dagster import history

    return history.open_instance(str(home))


def _pipeline(args: argparse.Namespace, instance: Any) -> str:
    from entropy_assets.dagster import history

    names = history.pipelines(instance)
    pipeline = args.pipeline or (names[0] if len(names) == 1 else None)
    if pipeline is None:
        raise ValueError(f"the instance has pipelines {names or 'none'}: name one with --pipeline")
    return pipeline


def _run_prune(args: argparse.Namespace) -> str:
    from entropy_assets.dagster import history
    from entropy_assets.stages.retention import prune

    instance = _instance(args)
    plan = history.plan_prune(instance, _pipeline(args, instance), args.keep)
    if not args.yes:
        return plan.describe() + "\n(dry run: pass --yes to delete)"
    return plan.describe() + f"\ndeleted {prune(plan)} file(s)"


def _run_audit(args: argparse.Namespace) -> str:
    from entropy_assets.dagster import history

    instance = _instance(args)
    pipeline = _pipeline(args, instance)
    if args.question == "history":
        return history.law_history(instance, pipeline).render(args.format)
    if args.question == "run":
        return history.audit_run(instance, pipeline, partition=args.partition, run_id=args.run_id).render(args.format)
    if not args.partition:
        raise ValueError("audit diff needs --partition")
    return history.diff_subsets(instance, pipeline, args.partition, old=args.old, new=args.new).render(args.format)


def _run_law(args: argparse.Namespace) -> dict[str, Any] | str:
    from entropy_assets.dagster import history
    from entropy_assets.entropy_law import fit_law

    instance = _instance(args)
    home = args.dagster_home or os.environ.get("DAGSTER_HOME")
    names = history.training_pipelines(instance)
    if args.pipeline:
        names = [name for name in names if name == args.pipeline]
    if not names:
        where = f" of pipeline {args.pipeline!r}" if args.pipeline else ""
        raise ValueError(f"{home}: the instance has no training runs{where}")
    reports = {}
    for name in names:
        points = history.law_points(instance, name)
        methods = args.methods or history.fitted_methods(instance, name)
        fitted = [p for p in points if _fits(p.method, methods)]
        reports[name] = (points, fit_law(fitted, level=args.level), methods)
    if args.json:
        return {
            name: {
                **fit.to_dict(),
                "fit_methods": methods or "all",
                "points": [vars(p) for p in points],
                "comparison": compare_methods(points, level=args.level).to_dict(),
            }
            for name, (points, fit, methods) in reports.items()
        }
    return "\n\n".join(_law_report(name, *report, level=args.level) for name, report in reports.items())


def _fits(method: str, methods: Sequence[str] | None) -> bool:
    """Whether runs of ``method`` enter a fit of ``methods`` (all when empty; random's seeds count as random)."""
    return not methods or method in methods or (is_random(method) and "random" in methods)


def _law_report(name: str, points: Sequence[Any], fit: Any, methods: Sequence[str] | None, *, level: float) -> str:
    """The fit and the table of points, for a terminal."""
    from entropy_assets.entropy_law import data_versions

    versions = data_versions(points)
    lines = [
        f"entropy law of pipeline {name!r}: {len(points)} runs on {len(versions)} data "
        f"version{'s' if len(versions) != 1 else ''}, "
        f"{len(fit.points)} in the fit"
    ]
    for label, comparison in (("L(R)", fit.loss_vs_ratio), ("Z(R)", fit.performance_vs_ratio)):
        if comparison is None:
            continue
        best = comparison.best
        others = ", ".join(f"{n} {c.cv_rmse:.4g}" for n, c in comparison.candidates.items() if n != best.form)
        intervals = best.intervals()
        lines.append(
            f"{label}: {best.form:<11} {label[0]} = {best.formula}   R² {best.r_squared:.4f}   "
            f"leave-one-out RMSE {best.cv_rmse:.4g}" + (f" (against {others})" if others else "")
        )
        lines.append(
            f"      a {best.a:.4g} [{intervals['a'][0]:.4g}, {intervals['a'][1]:.4g}]   "
            f"b {best.b:.4g} [{intervals['b'][0]:.4g}, {intervals['b'][1]:.4g}]   ({best.level:.0%} intervals)"
        )
    if fit.performance_vs_ratio_and_loss is not None:
        plane = fit.performance_vs_ratio_and_loss
        lines.append(f"Z(R, L): Z = {plane.formula}   R² {plane.r_squared:.4f}")
    lines.extend(f"note: {note}" for note in fit.notes)
    lines.append("")
    lines.append(f"{'version':<9}{'data version':<14}{'method':<12}{'budget':>7}{'R':>9}{'L':>9}{'Z':>9}  fit")
    for point in points:
        z = f"{point.performance:9.4f}" if point.performance is not None else f"{'-':>9}"
        used = "yes" if _fits(point.method, methods) else "no"
        lines.append(
            f"{'v' + str(versions.index(point.data_version) + 1):<9}{point.data_version[:12]:<14}{point.method:<12}"
            f"{point.budget:>7}{point.ratio:9.4f}{point.loss:9.4f}{z}  {used}"
        )
    comparison = compare_methods(points, level=level)
    if comparison.random:
        title = f"against random (latest data version; Z: lower is better; {level:.0%} intervals)"
        lines += ["", title, comparison_text(comparison.rows()), "", comparison.summary()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input or settings)."""
    args = build_parser().parse_args(argv)
    commands = {
        "select": _run_select,
        "score": _run_score,
        "ratio": _run_ratio,
        "law": _run_law,
        "audit": _run_audit,
        "prune": _run_prune,
    }
    run = commands[args.command]
    try:
        result = run(args)
    except (ValueError, OSError) as error:  # SourceError and RecordError are ValueErrors
        print(f"entropy-assets {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"entropy-assets {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
