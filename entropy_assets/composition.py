"""What a pool and a subset are made of: cheap facets of every sample (source file, record format, dominant Unicode
script, length), a set's mix over each facet, and the total variation distance between two mixes.

Compression ratios depend on the script: UTF-8 Chinese compresses worse than English, so a selection by ratio can
drift towards one script while looking diverse. The mix of a subset against its pool's says so, per facet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

FACETS: tuple[str, ...] = ("source", "format", "script", "length")
"""The facets of a sample, as columns of ``facet_frame``."""

SCRIPTS: Mapping[str, str] = {
    "Latin": r"\p{Latin}",
    "Han": r"\p{Han}",
    "Kana": r"[\p{Hiragana}\p{Katakana}]",
    "Hangul": r"\p{Hangul}",
    "Cyrillic": r"\p{Cyrillic}",
    "Arabic": r"\p{Arabic}",
    "Devanagari": r"\p{Devanagari}",
    "Greek": r"\p{Greek}",
    "Hebrew": r"\p{Hebrew}",
    "Thai": r"\p{Thai}",
}
"""The scripts told apart, by the Unicode script property of their letters; a text with letters of none of them (or
none at all: digits, punctuation) is ``other``."""

SCRIPT_SAMPLE_CHARS = 2048
"""A text's script is read from its first this many characters: the cost per sample is bounded, and a text that
changes script after that many characters is rare in instruction data."""

SCRIPT_BATCH = 16_384
"""Texts whose scripts ``scripts`` reads at once."""

LENGTH_BUCKETS: tuple[tuple[int, str], ...] = (
    (256, "<256 B"),
    (1024, "256 B-1 KiB"),
    (4096, "1-4 KiB"),
    (16384, "4-16 KiB"),
)
"""Upper bounds (exclusive) of the length buckets of canonical text, in bytes; longer is ``>=16 KiB``."""


def scripts(texts: pl.Series) -> pl.Series:
    """The dominant script of each text: the one with the most letters among its first ``SCRIPT_SAMPLE_CHARS``
    characters (ties go to the earlier in ``SCRIPTS``). Texts whose letters are all Latin, most of an English pool,
    are decided by one scan: Latin if they hold a letter; only texts with letters of other scripts are counted.
    Taken ``SCRIPT_BATCH`` texts at a time: the slices of a hundred thousand long texts held at once were 800 MB."""
    if len(texts) > SCRIPT_BATCH:
        batches = [_scripts(texts.slice(start, SCRIPT_BATCH)) for start in range(0, len(texts), SCRIPT_BATCH)]
        return pl.concat(batches)
    return _scripts(texts)


def _scripts(texts: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"text": texts.str.slice(0, SCRIPT_SAMPLE_CHARS)}).with_row_index("row")
    only_latin = (pl.col("text").str.len_bytes() == pl.col("text").str.len_chars()) | ~pl.col("text").str.contains(
        r"[\p{L}--\p{Latin}]"
    )
    found = frame.select(
        "row",
        only_latin=only_latin,
        simple=pl.when(pl.col("text").str.contains(r"\p{Latin}")).then(pl.lit("Latin")).otherwise(pl.lit("other")),
    )
    result = found["simple"].to_numpy().astype(object)
    rows = found.filter(~pl.col("only_latin"))["row"]
    if len(rows):
        counts = pl.concat_list([pl.col("text").str.count_matches(pattern) for pattern in SCRIPTS.values()])
        names = pl.lit(list(SCRIPTS), dtype=pl.List(pl.String))
        mixed = frame[rows].select(
            script=pl.when(counts.list.max() > 0).then(names.list.get(counts.list.arg_max())).otherwise(pl.lit("other"))
        )
        result[rows.to_numpy()] = mixed["script"].to_numpy()
    return pl.Series("script", result, dtype=pl.String)


def length_expr(n_bytes: str = "n_bytes") -> pl.Expr:
    """The length bucket of each sample's canonical text."""
    expr = pl.lit(">=16 KiB")
    for bound, label in reversed(LENGTH_BUCKETS):
        expr = pl.when(pl.col(n_bytes) < bound).then(pl.lit(label)).otherwise(expr)
    return expr.alias("length")


def facet_frame(pool: pl.DataFrame) -> pl.DataFrame:
    """Every sample's facets (``FACETS``), one row per pool row: the source file's name, the record format, the
    dominant script (the pool's ``script`` column where it has one) and the length bucket."""
    return pool.select(
        source=pl.col("source").str.split("/").list.last(),
        format=pl.col("format"),
        script=pool["script"] if "script" in pool.columns else scripts(pool["text"]),
        length=length_expr(),
    )


def facet_values(pool: pl.DataFrame, facet: str) -> pl.Series:
    """One facet of every sample (see ``facet_frame``), computed alone: the script is not read for a source."""
    if facet == "script":
        return (pool["script"] if "script" in pool.columns else scripts(pool["text"])).alias("script")
    expressions = {
        "source": pl.col("source").str.split("/").list.last(),
        "format": pl.col("format"),
        "length": length_expr(),
    }
    return pool.select(expressions[facet].alias(facet)).to_series()


def value_counts(facets: pl.DataFrame) -> dict[str, dict[str, int]]:
    """How many rows of ``facets`` (from ``facet_frame``) hold each value, per facet."""
    return {facet: dict(facets[facet].value_counts(name="n").iter_rows()) for facet in facets.columns}


def mix(values: pl.Series) -> dict[str, float]:
    """The share of each value, largest first (ties by name)."""
    if values.len() == 0:
        return {}
    counts = values.value_counts(name="n").sort(["n", values.name], descending=[True, False])
    return {str(value): count / values.len() for value, count in counts.iter_rows()}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the sum of absolute differences of two mixes: 0 when equal, 1 when they share nothing."""
    return 0.5 * sum(abs(p.get(key, 0.0) - q.get(key, 0.0)) for key in set(p) | set(q))


@dataclass(frozen=True)
class FacetMix:
    """A subset's mix over one facet beside its pool's, and their total variation distance."""

    pool: Mapping[str, float]
    subset: Mapping[str, float]
    distance: float


def composition(facets: pl.DataFrame, positions: pl.Series | list[int]) -> dict[str, FacetMix]:
    """The mix of the rows at ``positions`` against all rows of ``facets`` (from ``facet_frame``), per facet; shares
    and distances to 4 decimals."""
    chosen = facets[positions]
    return {facet: _facet_mix(mix(facets[facet]), mix(chosen[facet])) for facet in facets.columns}


def composition_from_counts(pool: Mapping[str, Mapping[str, int]], chosen: pl.DataFrame) -> dict[str, FacetMix]:
    """``composition`` for a pool known by its count of each facet value (a pool too large to hold) and the chosen
    rows' facets (from ``facet_frame``)."""
    result = {}
    for facet in chosen.columns:
        total = sum(pool[facet].values())
        counted = sorted(pool[facet].items(), key=lambda item: (-item[1], item[0]))
        result[facet] = _facet_mix({str(k): n / total for k, n in counted if total}, mix(chosen[facet]))
    return result


def _facet_mix(pool_mix: Mapping[str, float], subset_mix: Mapping[str, float]) -> FacetMix:
    return FacetMix(
        {k: round(v, 4) for k, v in pool_mix.items()},
        {k: round(v, 4) for k, v in subset_mix.items()},
        round(total_variation(pool_mix, subset_mix), 4),
    )


def judge_composition(mixes: Mapping[str, FacetMix], threshold: float) -> tuple[bool, str]:
    """Whether every facet's subset mix is within ``threshold`` (total variation) of the pool's, and a sentence
    that says so, naming the farthest facet and its largest shares when not."""
    far = {facet: mixed.distance for facet, mixed in mixes.items() if mixed.distance > threshold}
    if not far:
        return True, f"every facet's mix within {threshold} of the pool's" if mixes else "no composition recorded"
    worst = max(far, key=far.__getitem__)
    top = sorted(mixes[worst].subset.items(), key=lambda item: -item[1])[:3]
    shares = ", ".join(f"{name} {share:.0%} (pool {mixes[worst].pool.get(name, 0.0):.0%})" for name, share in top)
    return False, (
        f"the subset's {', '.join(far)} mix is farther than {threshold} from the pool's (total variation "
        f"{far[worst]} for {worst}); its largest {worst} shares: {shares}; stratify keeps the pool's mix"
    )
