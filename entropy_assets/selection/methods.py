"""Every selection method by name, with how its configuration is made and the function that runs it: the one
registry that the command line and the Dagster plugin both read.

``method_config(name, options)`` validates a method's settings before any data is read; ``select(pool,
config)`` runs the method the configuration belongs to (``method_of(config)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import polars as pl

from entropy_assets.compression import KnownSizes

from .base import BudgetUnit, PoolAccess, Selection
from .baselines import BASELINES, NEED_FEATURES, NEED_SIZES, BaselineConfig, baseline_select, sizes_fit
from .checkpoint import SelectionCheckpoint
from .hierarchical import HierarchicalConfig, hierarchical_zip_select
from .stratified import Stratify, stratified_select, with_budget
from .warm import WarmStart
from .zip import Progress, ZipConfig, zip_select


@dataclass(frozen=True)
class StratifiedConfig:
    """A method's configuration (its budget the whole subset's), run within the strata of ``stratify``."""

    inner: ZipConfig | HierarchicalConfig | BaselineConfig
    stratify: Stratify


SelectionConfig = ZipConfig | HierarchicalConfig | BaselineConfig | StratifiedConfig
"""The configuration of any method, stratified or not."""


@dataclass(frozen=True)
class SelectionOptions:
    """The settings every method draws its configuration from; each method reads the ones it has."""

    budget: int
    budget_unit: BudgetUnit = "samples"
    k1: int = 10000
    k2: int = 200
    k3: int = 100
    compressor: str | None = None
    """None: the method's own default (zstd; ``zip_paper`` always measures with zlib level 9)."""
    level: int | None = None
    seed: int = 0
    n_jobs: int = 0
    """Compression threads; 0 means every available core."""
    shards: int = 8
    """``zip_hierarchical``: content-hash shards selected within before the final pass."""
    oversample: float = 2.0
    """``zip_hierarchical``: each shard keeps this many times its share of the budget."""
    processes: int = 0
    """``zip_hierarchical``: worker processes for the shards; 0 means one per core."""
    stratify: Stratify | None = None
    """Select within the strata of a facet, each with a share of the budget (``selection.stratified``)."""


Run = Callable[
    [
        pl.DataFrame,
        SelectionConfig,
        Progress | None,
        SelectionCheckpoint | None,
        WarmStart | None,
        KnownSizes | None,
        PoolAccess | None,
    ],
    Selection,
]
"""A method's function: the pool, its configuration, a progress callback, a checkpoint, a warm start, the samples'
sizes as the scores measured them and what it may read beyond a pool frame of light columns (each of the last five
may be ignored)."""


@dataclass(frozen=True)
class SelectionMethod:
    """A method's name, what it does, how its configuration is made from the shared options, and its function."""

    name: str
    description: str
    configure: Callable[[SelectionOptions], SelectionConfig]
    run: Run
    checkpoints: bool
    """Whether a run saves its rounds to a checkpoint and resumes after a kill (baselines are fast and keep none)."""
    needs: frozenset[str] = frozenset({"text"})
    """What the method reads besides the pool's light columns (``baselines.LIGHT_COLUMNS``) to choose: ``text``
    (every sample's), ``texts`` (some samples' text, read as it asks for them: ``base.LazyTexts``), ``sizes`` (every
    sample's compressed size, which known sizes give without the text), or a feature of the text that is stored per
    part of the pool (``tokens``, ``near_duplicates``: ``stages.pool_features``)."""


def _shared(options: SelectionOptions) -> dict[str, Any]:
    """The options every method's configuration takes."""
    return {
        "budget": options.budget,
        "budget_unit": options.budget_unit,
        "seed": options.seed,
        "n_jobs": options.n_jobs,
    }


def _zip(options: SelectionOptions) -> ZipConfig:
    return ZipConfig(
        **_shared(options),
        k1=options.k1,
        k2=options.k2,
        k3=options.k3,
        compressor=options.compressor or "zstd",
        level=options.level,
    )


def _zip_paper(options: SelectionOptions) -> ZipConfig:
    return ZipConfig(**_shared(options), k1=options.k1, k2=options.k2, k3=options.k3, mode="paper", compressor="zlib")


def _zip_hierarchical(options: SelectionOptions) -> HierarchicalConfig:
    return HierarchicalConfig(
        zip=_zip(options), shards=options.shards, oversample=options.oversample, processes=options.processes
    )


def _run_zip(
    pool: pl.DataFrame,
    config: SelectionConfig,
    progress: Progress | None,
    checkpoint: SelectionCheckpoint | None,
    warm: WarmStart | None,
    known: KnownSizes | None,
    access: PoolAccess | None,
) -> Selection:
    assert isinstance(config, ZipConfig)
    texts = access.texts if access is not None else None
    return zip_select(pool, config, progress, checkpoint=checkpoint, warm=warm, known=known, texts=texts)


def _run_hierarchical(
    pool: pl.DataFrame,
    config: SelectionConfig,
    _progress: Progress | None,
    checkpoint: SelectionCheckpoint | None,
    warm: WarmStart | None,
    known: KnownSizes | None,
    _access: PoolAccess | None,
) -> Selection:
    assert isinstance(config, HierarchicalConfig)
    return hierarchical_zip_select(pool, config, checkpoint=checkpoint, warm=warm, known=known)


def _run_baseline(
    pool: pl.DataFrame,
    config: SelectionConfig,
    _progress: Progress | None,
    _checkpoint: SelectionCheckpoint | None,
    warm: WarmStart | None,
    known: KnownSizes | None,
    access: PoolAccess | None,
) -> Selection:
    assert isinstance(config, BaselineConfig)
    bands = access.bands if access is not None else None
    return baseline_select(pool, config, warm=warm, known=known, bands=bands)


def _baseline(name: str) -> Callable[[SelectionOptions], BaselineConfig]:
    def configure(options: SelectionOptions) -> BaselineConfig:
        return BaselineConfig(
            method=name,  # type: ignore[arg-type]
            **_shared(options),
            compressor=options.compressor or "zstd",
            level=options.level,
        )

    return configure


_BASELINE_DESCRIPTIONS = {
    "random": "a seeded random draw",
    "ratio": "the samples of lowest per-sample compression ratio",
    "longest": "the longest samples in bytes",
    "longest_tokens": "the samples with the most tokens (GPT-2-style pre-tokenizer pieces, each CJK character one)",
    "dedup": "a random draw among the first copy of each distinct content",
    "near_dedup": "a random draw among the first of each cluster of near-duplicates (MinHash LSH, word 5-grams)",
    "ratio_band": "a random draw among the samples whose own ratio lies in the pool's central half",
}


def _baseline_needs(name: str) -> frozenset[str]:
    if name in NEED_FEATURES:
        return frozenset({NEED_FEATURES[name]})
    return frozenset({"sizes"} if name in NEED_SIZES else set())


SELECTION_METHODS: Mapping[str, SelectionMethod] = {
    method.name: method
    for method in (
        SelectionMethod(
            "zip",
            "ZIP: canonical text, zstd over the chosen set, lazy re-scoring",
            _zip,
            _run_zip,
            True,
            frozenset({"sizes", "texts"}),
        ),
        SelectionMethod("zip_paper", "ZIP as published: zlib-9 over whole records", _zip_paper, _run_zip, True),
        SelectionMethod(
            "zip_hierarchical",
            "ZIP within content-hash shards, then over their winners",
            _zip_hierarchical,
            _run_hierarchical,
            True,
        ),
        *(
            SelectionMethod(
                name, _BASELINE_DESCRIPTIONS[name], _baseline(name), _run_baseline, False, _baseline_needs(name)
            )
            for name in BASELINES
        ),
    )
}
"""Every method, by name."""

METHODS: tuple[str, ...] = tuple(SELECTION_METHODS)
"""The names of every method."""


def method_config(name: str, options: SelectionOptions) -> SelectionConfig:
    """The validated configuration of method ``name``; raises ``ValueError`` naming the bad setting."""
    if name not in SELECTION_METHODS:
        raise ValueError(f"unknown selection method {name!r}; expected one of {', '.join(METHODS)}")
    config = SELECTION_METHODS[name].configure(options)
    return config if options.stratify is None else StratifiedConfig(config, options.stratify)


def describe_config(config: SelectionConfig) -> dict[str, Any]:
    """A configuration as JSON-ready settings: what a subset records, and what a warm start must match."""
    if isinstance(config, StratifiedConfig):
        return {**asdict(config.inner), "stratify": config.stratify.describe()}
    return asdict(config)


def method_of(config: SelectionConfig) -> str:
    """The name of the method ``config`` configures."""
    if isinstance(config, StratifiedConfig):
        return method_of(config.inner)
    if isinstance(config, HierarchicalConfig):
        return "zip_hierarchical"
    if isinstance(config, ZipConfig):
        return "zip_paper" if config.mode == "paper" else "zip"
    return config.method


def needs(config: SelectionConfig) -> frozenset[str]:
    """What ``config``'s method reads besides the pool's light columns (``SelectionMethod.needs``); stratified, also
    the facet its strata are of (``source`` or ``format``, columns of the pool; ``script``, a feature)."""
    if isinstance(config, StratifiedConfig):
        return needs(config.inner) | {config.stratify.by}
    return SELECTION_METHODS[method_of(config)].needs


def reads_light_columns(config: SelectionConfig, known: KnownSizes | None, samples: int) -> bool:
    """Whether ``config``'s method chooses among ``samples`` samples from the pool's light columns
    (``baselines.LIGHT_COLUMNS``), the features it needs (``needs``) and ``known`` for the sizes it needs: no text,
    so a pool of any size can be selected from without holding its text."""
    wanted = needs(config)
    if "text" in wanted or ("texts" in wanted and isinstance(config, StratifiedConfig)):
        return False  # a stratum's text is not read lazily
    inner = config.inner if isinstance(config, StratifiedConfig) else config
    fits = isinstance(inner, BaselineConfig | ZipConfig) and sizes_fit(inner, known, samples)
    return "sizes" not in wanted or fits


def select(
    pool: pl.DataFrame,
    config: SelectionConfig,
    *,
    progress: Progress | None = None,
    checkpoint: SelectionCheckpoint | None = None,
    warm: WarmStart | None = None,
    known: KnownSizes | None = None,
    access: PoolAccess | None = None,
) -> Selection:
    """Run the method that ``config`` configures on ``pool``; ``progress`` is called after each ZIP round,
    ``checkpoint`` (ignored by baselines) lets a killed run resume, ``warm`` starts from an earlier selection,
    ``known`` (the pool's sizes from ``compression_scores``) spares ZIP's stage 1 compressing the pool again, and
    ``access`` lets a method choose from a pool frame of light columns (``needs``): ``near_dedup`` by the samples'
    near-duplicate keys, ZIP reading its candidates' text. A stratified configuration runs
    the method within each stratum, with no checkpoint (a rerun selects every stratum again), with the stratum's
    known sizes and bands."""
    run = SELECTION_METHODS[method_of(config)].run
    if not isinstance(config, StratifiedConfig):
        return run(pool, config, progress, checkpoint, warm, known, access)
    inner = config.inner
    budget = inner.zip if isinstance(inner, HierarchicalConfig) else inner
    selection = stratified_select(
        pool,
        config.stratify,
        budget.budget,
        budget.budget_unit,
        lambda stratum, quota, rows: run(
            stratum,
            with_budget(inner, quota),
            progress,
            None,
            warm,
            known.subset(rows) if known is not None else None,
            access.rows(rows) if access is not None else None,
        ),
    )
    return replace(selection, config=describe_config(config))
