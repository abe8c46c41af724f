"""Does a selection keep the pool's mix? ZIP unstratified, stratified by source and by script, and random, on a pool
that is a quarter Chinese (issue 16).

The pool: ``llamafactory_alpaca_zh_demo.json``, ``llamafactory_alpaca_en_demo.json`` and ``code_alpaca_2k.json``
from ``../shared/data/raw`` (4,016 records); budget 300, K1=2000, K2=100, K3=50 (as ``entropy-assets select
--budget 300 --k1 2000 --k2 100 --k3 50``). Prints each source's and script's share in the pool and in each subset,
the total variation distance of each subset's mix from the pool's, and each subset's zlib-9 ratio; random is the
mean of ``--seeds`` seeds. Targets: stratified shares within 2 points of the pool's, and each stratified subset's
ratio below random's.

Usage: ``python benchmarks/stratified_mix.py [--seeds N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from entropy_assets.composition import FacetMix, composition, facet_frame
from entropy_assets.entropy_law import law_ratio
from entropy_assets.selection import methods
from entropy_assets.selection.methods import SelectionOptions, method_config
from entropy_assets.selection.stratified import Stratify
from entropy_assets.sources import load_pool

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
FILES = ("llamafactory_alpaca_zh_demo.json", "llamafactory_alpaca_en_demo.json", "code_alpaca_2k.json")
OPTIONS = SelectionOptions(budget=300, k1=2000, k2=100, k3=50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="random draws averaged")
    args = parser.parse_args(argv)
    if not RAW.is_dir():
        print(f"no raw data under {RAW}", file=sys.stderr)
        return 1
    pool = load_pool([RAW / name for name in FILES]).frame
    facets = facet_frame(pool)
    runs: dict[str, tuple[dict[str, FacetMix], float]] = {}
    for label, stratify in (("zip", None), ("zip --stratify source", "source"), ("zip --stratify script", "script")):
        options = SelectionOptions(**{**OPTIONS.__dict__, "stratify": Stratify(stratify) if stratify else None})
        selection = methods.select(pool, method_config("zip", options))
        positions = selection.positions
        runs[label] = (composition(facets, positions), law_ratio(pool["text"].gather(positions).to_list()))
    random_ratios, random_mixes = [], []
    for seed in range(args.seeds):
        options = SelectionOptions(**{**OPTIONS.__dict__, "seed": seed})
        positions = methods.select(pool, method_config("random", options)).positions
        random_ratios.append(law_ratio(pool["text"].gather(positions).to_list()))
        random_mixes.append(composition(facets, positions))
    mean_mix = {
        facet: FacetMix(
            random_mixes[0][facet].pool,
            {
                key: statistics.mean(m[facet].subset.get(key, 0.0) for m in random_mixes)
                for key in random_mixes[0][facet].pool
            },
            statistics.mean(m[facet].distance for m in random_mixes),
        )
        for facet in ("source", "format", "script", "length")
    }
    runs[f"random (mean of {args.seeds} seeds)"] = (mean_mix, statistics.mean(random_ratios))

    print(f"pool: {pool.height:,} records of {', '.join(FILES)}; budget 300, K1=2000, K2=100, K3=50\n")
    for facet in ("source", "script"):
        values = list(runs["zip"][0][facet].pool)
        header = f"{'':<34}" + "".join(f"{value.split('.')[0][-22:]:>24}" for value in values) + f"{'TVD':>8}"
        print(f"{facet} shares (%)\n{header}")
        print(f"{'pool':<34}" + "".join(f"{runs['zip'][0][facet].pool[v] * 100:>24.1f}" for v in values))
        for label, (mixes, _) in runs.items():
            shares = "".join(f"{mixes[facet].subset.get(v, 0.0) * 100:>24.1f}" for v in values)
            print(f"{label:<34}{shares}{mixes[facet].distance:>8.3f}")
        print()
    random_ratio = runs[f"random (mean of {args.seeds} seeds)"][1]
    spread = f"{min(random_ratios):.4f}-{max(random_ratios):.4f}"
    print(f"zlib-9 ratio (random: mean of {args.seeds} seeds, spread {spread})")
    for label, (_, ratio) in runs.items():
        print(f"  {label:<34}{ratio:.4f}")
    print(
        "\ntotal variation distance from the pool's mix, every facet (the composition check's default threshold: 0.2)"
    )
    print(f"{'':<34}" + "".join(f"{facet:>10}" for facet in ("source", "format", "script", "length")))
    for label, (mixes, _) in runs.items():
        print(f"{label:<34}" + "".join(f"{mixes[f].distance:>10.3f}" for f in ("source", "format", "script", "length")))
    length_values = list(runs["zip"][0]["length"].pool)
    print("length shares (%): " + ", ".join(length_values))
    for label in ("pool", *runs):
        mixes = runs["zip"][0] if label == "pool" else runs[label][0]
        shares = mixes["length"].pool if label == "pool" else mixes["length"].subset
        print(f"  {label:<32}" + "".join(f"{shares.get(v, 0.0) * 100:>8.1f}" for v in length_values))
    within = all(
        abs(runs[label][0][facet].subset.get(v, 0.0) - share) <= 0.02
        for label, facet in (("zip --stratify source", "source"), ("zip --stratify script", "script"))
        for v, share in runs[label][0][facet].pool.items()
    )
    below = all(runs[label][1] < random_ratio for label in ("zip --stratify source", "zip --stratify script"))
    print(
        f"\ntargets: stratified shares within 2 points of the pool's: {'met' if within else 'NOT met'}; "
        f"stratified ratios below random's: {'met' if below else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
