"""Five data versions through the pipeline, one of them bad: the entropy-law risk check flags it before training.

``python examples/data_update_risk.py [--home DIR] [--raw ../shared/data/raw] [--bad near-duplicates|noise]``

Builds versions of a data folder from the real files in ``../shared/data/raw``:

1. 800 Alpaca records;
2. plus 400 Code Alpaca records;
3. plus 500 more Alpaca records;
4. the bad update: plus a block of 600 near-duplicates (20 records of version 1 repeated, each with a counter
   appended), or with ``--bad noise`` 600 Alpaca records whose outputs are shuffled and 30% of their characters
   replaced at random;
5. the block removed, 500 more Alpaca records added.

For each version it observes the raw data, rescores, selects with ZIP and three baselines, trains the built-in
model on each subset (60 steps) and runs the ``entropy_law_risk`` check against the law fitted on the earlier
versions. A stand-in for full training, ``full_training``, depends on ``training_run``: the blocking check keeps it
from running on a subset whose (R, L) falls off the law. Prints a table per version, then fits the law on every
run. Runs go to ``--home`` (a Dagster home), so ``dagster dev`` shows them afterwards.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("zip", "zip_paper", "random", "longest", "dedup")


def _alpaca(raw: Path, part: str, count: int) -> list[dict[str, Any]]:
    (path,) = raw.glob(f"alpaca52k_en_part{part}_*.json")
    return json.loads(path.read_text(encoding="utf-8"))[:count]


def bad_block(raw: Path, kind: str, seeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """600 records of the bad update: near-duplicates of ``seeds``, or garbled Alpaca outputs."""
    if kind == "near-duplicates":
        return [{**seeds[i % 20], "output": f"{seeds[i % 20]['output']} (ref {i})"} for i in range(600)]
    rng = random.Random(0)
    garbled = []
    for record in _alpaca(raw, "04", 600):
        words = record["output"].split()
        rng.shuffle(words)
        noise = "abcdefghijklmnopqrstuvwxyz0123456789#@%"
        output = "".join(c if rng.random() > 0.3 else rng.choice(noise) for c in " ".join(words))
        garbled.append({**record, "output": output})
    return garbled


def version_files(raw: Path, bad: str = "near-duplicates") -> list[dict[str, list[dict[str, Any]]]]:
    """The files of each of the five versions, by name."""
    base = {"alpaca_a.json": _alpaca(raw, "01", 800)}
    code = {"code_alpaca.json": json.loads((raw / "code_alpaca_2k.json").read_text(encoding="utf-8"))[:400]}
    more = {"alpaca_b.json": _alpaca(raw, "02", 500)}
    clean = {**base, **code, **more}
    return [
        base,
        {**base, **code},
        clean,
        {**clean, "update_block.json": bad_block(raw, bad, base["alpaca_a.json"][:20])},
        {**clean, "alpaca_c.json": _alpaca(raw, "03", 500)},
    ]


def write_version(folder: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    """Make ``folder`` hold exactly ``files``."""
    for stale in folder.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, records in files.items():
        (folder / name).write_text(json.dumps(records), encoding="utf-8")


def build_definitions(home: Path, steps: int = 60) -> Any:
    """The pipeline on ``home/data`` with storage in ``home/storage``, plus a ``full_training`` stand-in."""
    import dagster as dg

    from entropy_assets.dagster import EntropyStorage, SelectionPipeline, TrainingSettings, selection_pipeline_defs

    pipeline = SelectionPipeline(
        name="updates",
        paths=[str(home / "data")],
        methods=METHODS,
        budgets=(200,),
        k1=600,
        k2=60,
        k3=30,
        training=TrainingSettings(backend="builtin", steps=steps, eval_samples=100),
    )
    defs = selection_pipeline_defs(pipeline, storage=EntropyStorage(base_path=str(home / "storage")))

    @dg.asset(
        key=["updates", "full_training"],
        deps=[dg.AssetKey(["updates", "training_run"])],
        partitions_def=pipeline.partitions,
        group_name="updates",
    )
    def full_training() -> dg.MaterializeResult:
        """A stand-in for the expensive run: it only records that it was allowed to start."""
        return dg.MaterializeResult(metadata={"started": True})

    return dg.Definitions(assets=[*(defs.assets or []), full_training], resources=defs.resources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="Dagster home and storage folder (default: a new temporary folder)")
    parser.add_argument("--raw", default=str(ROOT.parent / "shared" / "data" / "raw"), help="the raw data files")
    parser.add_argument("--steps", type=int, default=60, help="training steps per subset")
    parser.add_argument("--bad", choices=("near-duplicates", "noise"), default="near-duplicates", help="the bad update")
    args = parser.parse_args(argv)
    home = Path(args.home or tempfile.mkdtemp(prefix="entropy_updates_")).resolve()
    (home / "data").mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)

    import dagster as dg

    from entropy_assets.stages import RiskResult, TrainingResult

    defs = build_definitions(home, args.steps)
    assets, resources = list(defs.assets or []), dict(defs.resources or {})
    instance = dg.DagsterInstance.get()

    def run(names: list[str], partition: str | None = None) -> dg.ExecuteInProcessResult:
        keys = [dg.AssetKey(["updates", name]) for name in names]
        return dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            selection=keys,
            partition_key=partition,
            raise_on_error=False,
        )

    started = time.perf_counter()
    for number, files in enumerate(version_files(Path(args.raw), args.bad), start=1):
        write_version(home / "data", files)
        run(["raw_data"])
        run(["pool", "compression_scores"])
        records = sum(len(r) for r in files.values())
        print(f"\nversion {number}: {', '.join(sorted(files))} ({records} records)")
        print(f"  {'method':<10}{'R':>8}{'L':>8}  {'check':<16}{'residual':>9}  {'band':<18}{'full training':<14}")
        for method in METHODS:
            result = run(["selected_subset", "training_run", "full_training"], method)
            materialized = {e.asset_key.path[-1]: e for e in result.get_asset_materialization_events()}
            metadata = {k: v.value for k, v in materialized["training_run"].materialization.metadata.items()}
            trained = TrainingResult.from_metadata(metadata)
            (check,) = result.get_asset_check_evaluations()
            risk = RiskResult.from_metadata({k: v.value for k, v in check.metadata.items()}, passed=check.passed)
            found = risk.assessment
            band = f"[{found.band_low:.3f}, {found.band_high:.3f}]" if found else "(no fit yet)"
            residual = f"{found.residual:+.4f}" if found else ""
            verdict = "passed" if check.passed else f"FAILED ({found.direction if found else ''})"
            ran = "ran" if "full_training" in materialized else "blocked"
            print(
                f"  {method:<10}{trained.subset_ratio_zlib9:>8.4f}{trained.first_epoch_loss:>8.4f}"
                f"  {verdict:<16}{residual:>9}  {band:<18}{ran:<14}"
            )
    run(["entropy_law"])
    seconds = time.perf_counter() - started
    print(f"\nall five versions in {seconds:.0f} s. The law over every run:")
    from entropy_assets.cli import main as cli

    cli(["law", "--dagster-home", str(home)])
    print(f"\nplots and fit: {home / 'storage' / 'updates' / 'entropy_law'}")
    print(f"in the UI: DAGSTER_HOME={home} .venv/bin/dagster dev -f examples/data_update_risk.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
elif "DAGSTER_HOME" in os.environ:  # loaded by `dagster dev -f`: the same definitions, to browse the runs
    defs = build_definitions(Path(os.environ["DAGSTER_HOME"]))
