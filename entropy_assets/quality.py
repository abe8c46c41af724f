"""The quality gate: per-sample signals of machine noise, and the rule that keeps noisy samples out of every selection.

Incompressible bytes have the lowest compression ratio, so ZIP ranks an encoded attachment, a hex dump or a run of
random characters first, and the subset's own ratio then calls the result a success. The gate measures three
signals per sample, from its text alone (so that they are reused by content hash, like compressed sizes):

- ``encoded_chars``: characters in runs that look encoded: a run of 64 or more non-blank ASCII characters whose
  character entropy is that of base64 or random text (at least ``ENCODED_ENTROPY_BITS`` bits per character), a hex
  string, or hex words (``4a6f 686e``, ``0x4a, 0x6f``) when a text holds at least ``HEX_WORDS`` of them;
- ``other_share``: the share of characters that are neither letters, marks, digits, punctuation, whitespace nor
  ASCII symbols (control characters, replacement characters, stray symbols: mojibake and binary read as text);
- ``relative_ratio``: the sample's compression ratio over the median ratio of natural text of its length and script
  (``EXPECTED_RATIO``), measured from the scores' compressed sizes; judged from ``RATIO_MIN_BYTES`` up.

Noise in one field fails the whole sample: the signals read the canonical text, every field of the record.

The word-level rules of Gopher and C4 (as datatrove and NeMo Curator implement them) were made for English web text
and exclude code, chats and Chinese; none is used here. No kept library measures these three signals without a
model download, so they are written here (polars' regular expressions find the candidates; Python measures the rare
texts that hold any).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from entropy_assets.composition import scripts

QUALITY_SIGNALS_VERSION = "quality-signals-1"
"""The code version of the signals: part of the scores' version, so that a change here measures every sample again."""

SIGNALS_SCHEMA: dict[str, pl.DataType] = {
    "script": pl.String(),
    "encoded_chars": pl.Int64(),
    "other_share": pl.Float64(),
}
"""The signals measured from a sample's text alone, reused by content hash."""

GATE_SCHEMA: dict[str, pl.DataType] = {
    "relative_ratio": pl.Float64(),
    "excluded": pl.String(),
    "excluded_value": pl.Float64(),
}
"""What the gate adds to the scores: the ratio signal, and the reason (null when kept) with its signal's value."""

REASONS: tuple[str, ...] = ("encoded", "other_chars", "low_ratio")
"""Why a sample is excluded, in the order the gate judges (the first that fails is recorded)."""

ENCODED_RUN_CHARS = 64
"""Runs of non-blank ASCII characters this long or longer are candidates for encoded content."""
ENCODED_ENTROPY_BITS = 5.0
"""Character entropy (bits per character) from which a candidate run counts as encoded: base64 has 6, random
printable ASCII 6.5, English words run together about 4.1; long URLs in real instruction data measured 5.1-5.7
(so a text made mostly of such URLs can be excluded)."""
HEX_WORDS = 16
"""Hex words (hex digits with a digit and a letter, like ``4a6f``) a text must hold before they count as a dump."""

_CANDIDATE = rf"[!-~]{{{ENCODED_RUN_CHARS},}}"
_HEX_WORD = r"(?:^|\s)(?:0x)?[0-9A-Fa-f]*(?:[0-9][A-Fa-f]|[A-Fa-f][0-9])[0-9A-Fa-f]*[,:]?(?:\s|$)"
_OTHER = r"[^\p{L}\p{M}\p{N}\p{P}\p{Z}\s!-~\x{2500}-\x{259F}]"
_RUN = re.compile(_CANDIDATE)
_HEX_TOKEN = re.compile(r"(?:0x)?[0-9A-Fa-f]+[,:]?")
_HEX_RUN = re.compile(r"(?:0x)?[0-9A-Fa-f]+")

CJK_SCRIPTS = frozenset({"Han", "Kana", "Hangul"})
EXPECTED_RATIO: Mapping[str, tuple[float, ...]] = {
    "alphabetic": (1.11, 1.36, 1.61, 1.79, 1.99, 2.25, 2.49, 2.60),
    "cjk": (0.93, 1.01, 1.19, 1.40, 1.56, 1.72, 1.85, 1.90),
}
"""The median zstd (level 3) ratio of natural text by length, from 64 bytes (first value) doubling to 8 KiB and
beyond (last value), for alphabetic scripts and for Chinese, Japanese and Korean: measured on the 60,062 records of
the public instruction, chat and text files the project tests on (CJK measured up to 2 KiB, extended by its slope)."""
RATIO_MIN_BYTES = 512
"""Shorter texts are not judged by their ratio: below this, natural text and noise compress alike (frame overhead)."""


class QualitySettings(BaseModel):
    """The quality gate in front of every selection method: on by default, so that noise is never chosen and every
    method (random included) selects from the same samples. ``enabled: false`` reproduces the paper's ZIP."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(default=True, description="Exclude samples whose signals fail (off: every sample offered).")
    max_encoded_chars: int = Field(
        default=256,
        description="Most characters in encoded-looking runs (base64, hex, random characters) a sample may hold.",
    )
    max_other_share: float = Field(
        default=0.15,
        description="Largest share of characters that are neither letters, digits, punctuation, whitespace nor "
        "ASCII symbols (control characters, replacement characters: mojibake, binary read as text).",
    )
    min_relative_ratio: float = Field(
        default=0.65,
        description=f"Smallest compression ratio, relative to natural text of the same length and script, of a "
        f"sample of {RATIO_MIN_BYTES} bytes or more (incompressible: noise).",
    )

    @model_validator(mode="after")
    def _check(self) -> QualitySettings:
        if self.max_encoded_chars < ENCODED_RUN_CHARS:
            raise ValueError(f"quality max_encoded_chars must be >= {ENCODED_RUN_CHARS}, got {self.max_encoded_chars}")
        if not 0.0 < self.max_other_share <= 1.0:
            raise ValueError(f"quality max_other_share must be in (0, 1], got {self.max_other_share}")
        if not 0.0 <= self.min_relative_ratio < 2.0:
            raise ValueError(f"quality min_relative_ratio must be in [0, 2), got {self.min_relative_ratio}")
        return self

    def describe(self) -> dict[str, Any]:
        """The settings as they name the scores' version: off is off, whatever the thresholds."""
        if not self.enabled:
            return {"enabled": False}
        return {**self.model_dump(), "signals": QUALITY_SIGNALS_VERSION}


OFF = QualitySettings(enabled=False)
DEFAULT = QualitySettings()


def quality_from_option(value: str, overrides: Mapping[str, float] | None = None) -> QualitySettings:
    """Settings from the command line's ``--quality off|default`` and threshold overrides."""
    if value not in ("off", "default"):
        raise ValueError(f"--quality must be off or default, got {value!r}")
    if value == "off":
        return OFF
    return QualitySettings(**dict(overrides or {}))


def text_signals(texts: pl.Series) -> pl.DataFrame:
    """The signals of each text (``SIGNALS_SCHEMA``), row for row: its dominant script, the characters in runs that
    look encoded, and the share of other characters."""
    frame = pl.DataFrame({"text": texts})
    found = frame.select(
        candidate=pl.col("text").str.contains(_CANDIDATE) | (pl.col("text").str.count_matches(_HEX_WORD) >= HEX_WORDS),
        other_share=(
            pl.col("text").str.count_matches(_OTHER) / pl.max_horizontal(pl.col("text").str.len_chars(), 1)
        ).cast(pl.Float64),
    )
    encoded = np.zeros(frame.height, dtype=np.int64)
    rows = np.flatnonzero(found["candidate"].to_numpy())
    if len(rows):
        encoded[rows] = [encoded_chars(text) for text in texts.gather(rows).to_list()]
    return pl.DataFrame(
        {"script": scripts(texts), "encoded_chars": encoded, "other_share": found["other_share"]},
        schema=SIGNALS_SCHEMA,
    )


def encoded_chars(text: str) -> int:
    """The characters of ``text`` in runs that look encoded: long runs of base64-like or random characters, hex
    strings, and hex words when the text holds at least ``HEX_WORDS`` of them."""
    total = 0
    for run in _RUN.findall(text):
        if _is_hex(run) or character_entropy(run) >= ENCODED_ENTROPY_BITS:
            total += len(run)
    words = [word for word in text.split() if len(word) < ENCODED_RUN_CHARS and _HEX_TOKEN.fullmatch(word)]
    if sum(_is_hex_word(word) for word in words) >= HEX_WORDS:  # a dump: its all-digit words count too
        total += sum(len(word) for word in words if any(c.isdigit() for c in word))
    return total


def character_entropy(text: str) -> float:
    """The Shannon entropy of ``text``'s characters, in bits per character."""
    counts = np.fromiter(Counter(text).values(), dtype=np.float64)
    shares = counts / len(text)
    return float(-(shares * np.log2(shares)).sum()) if len(text) else 0.0


def _is_hex(run: str) -> bool:
    """A run of hex digits (with ``0x`` prefixes and separators) holding digits and letters, as random bytes
    written in hex do: not a long number, nor a run of one digit."""
    digits = "".join(_HEX_RUN.findall(run.replace("0x", "")))
    if len(digits) < 0.8 * len(run):
        return False
    has_letter = any(c in "abcdefABCDEF" for c in digits)
    return has_letter and any(c.isdigit() for c in digits) and character_entropy(digits) >= 3.0


def _is_hex_word(word: str) -> bool:
    """A hex word with a digit and a letter: ``4a6f``, ``0x1f,`` (not ``2024``, nor ``cafe``)."""
    digits = word.removeprefix("0x").rstrip(",:")
    return any(c.isdigit() for c in digits) and any(c in "abcdefABCDEF" for c in digits)


def expected_ratio(n_bytes: pl.Expr, script: pl.Expr) -> pl.Expr:
    """The median compression ratio of natural text of ``n_bytes`` in ``script`` (``EXPECTED_RATIO``)."""
    bucket = (n_bytes.clip(64).log(2).floor() - 6).cast(pl.Int64).clip(0, 7)
    tables = {name: pl.lit(list(values), dtype=pl.List(pl.Float64)) for name, values in EXPECTED_RATIO.items()}
    table = pl.when(script.is_in(list(CJK_SCRIPTS))).then(tables["cjk"]).otherwise(tables["alphabetic"])
    return table.list.get(bucket)


def apply_gate(scores: pl.DataFrame, settings: QualitySettings, ratio: str = "ratio") -> pl.DataFrame:
    """``scores`` (with ``n_bytes``, the zstd level 3 ratio in column ``ratio`` and ``SIGNALS_SCHEMA``) with the
    gate's columns (``GATE_SCHEMA``): the relative ratio, and each excluded sample's first failing reason and that
    signal's value (null when kept)."""
    relative = pl.col(ratio) / expected_ratio(pl.col("n_bytes"), pl.col("script"))
    frame = scores.with_columns(relative_ratio=relative.cast(pl.Float64))
    if not settings.enabled:
        return frame.with_columns(excluded=pl.lit(None, pl.String), excluded_value=pl.lit(None, pl.Float64))
    rules = [
        ("encoded", pl.col("encoded_chars") > settings.max_encoded_chars, pl.col("encoded_chars")),
        ("other_chars", pl.col("other_share") > settings.max_other_share, pl.col("other_share")),
        (
            "low_ratio",
            (pl.col("n_bytes") >= RATIO_MIN_BYTES) & (pl.col("relative_ratio") < settings.min_relative_ratio),
            pl.col("relative_ratio"),
        ),
    ]
    reason: pl.Expr = pl.lit(None, pl.String)
    value: pl.Expr = pl.lit(None, pl.Float64)
    for name, fails, signal in reversed(rules):
        reason = pl.when(fails).then(pl.lit(name)).otherwise(reason)
        value = pl.when(fails).then(signal.cast(pl.Float64)).otherwise(value)
    return frame.with_columns(excluded=reason, excluded_value=value)


def exclusion_counts(scores: pl.DataFrame) -> dict[str, int]:
    """How many samples of ``scores`` the gate excluded, by reason (reasons with none left out)."""
    if "excluded" not in scores.columns:
        return {}
    counts = scores["excluded"].drop_nulls().value_counts()
    found = dict(zip(counts["excluded"].to_list(), counts["count"].to_list(), strict=True))
    return {reason: int(found[reason]) for reason in REASONS if reason in found}


def source_of(sample_id: pl.Expr) -> pl.Expr:
    """The source file's name in a pool id (``<name>:<index>``)."""
    return sample_id.str.replace(r":\d+$", "")


def top_sources(scores: pl.DataFrame, limit: int = 5) -> dict[str, int]:
    """The source files with the most excluded samples, most first."""
    if "excluded" not in scores.columns:
        return {}
    excluded = scores.filter(pl.col("excluded").is_not_null())
    counts = (
        excluded.group_by(source_of(pl.col("id")).alias("source"))
        .len()
        .sort(["len", "source"], descending=[True, False])
    )
    return dict(zip(counts["source"].head(limit).to_list(), counts["len"].head(limit).to_list(), strict=True))


def share(counts: Mapping[str, int], rows: int) -> float:
    """The excluded share of ``rows`` samples."""
    return sum(counts.values()) / rows if rows else 0.0


__all__ = [
    "DEFAULT",
    "GATE_SCHEMA",
    "OFF",
    "QUALITY_SIGNALS_VERSION",
    "REASONS",
    "SIGNALS_SCHEMA",
    "QualitySettings",
    "apply_gate",
    "character_entropy",
    "encoded_chars",
    "exclusion_counts",
    "expected_ratio",
    "quality_from_option",
    "share",
    "source_of",
    "text_signals",
    "top_sources",
]
