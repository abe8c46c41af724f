"""The registry of selection methods that the command line and the plugin share."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest

from entropy_assets.selection.baselines import BaselineConfig
from entropy_assets.selection.hierarchical import HierarchicalConfig
from entropy_assets.selection.methods import METHODS, SelectionOptions, method_config, method_of, select
from entropy_assets.selection.zip import ZipConfig
from entropy_assets.sources import load_pool


@pytest.fixture(scope="module")
def alpaca(raw_dir: Path) -> pl.DataFrame:
    """The first 500 of 3130 Alpaca records."""
    return load_pool(raw_dir / "alpaca52k_en_part02_03252-06382.json").frame.head(500)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_selects_its_budget_and_records_the_configuration_it_ran(alpaca: pl.DataFrame, name: str) -> None:
    config = method_config(name, SelectionOptions(budget=40, k1=200, k2=30, k3=10, shards=3, n_jobs=1))
    assert method_of(config) == name
    selection = select(alpaca, config)
    assert selection.method == name
    assert len(selection) == 40 and selection.provenance["id"].n_unique() == 40
    if isinstance(config, HierarchicalConfig):
        assert selection.config == {**asdict(config), "zip": asdict(config.zip)}
    else:
        assert selection.config == asdict(config)


def test_options_reach_each_method_as_it_reads_them() -> None:
    options = SelectionOptions(budget=9, k1=30, k2=20, k3=5, compressor="lzma", seed=4, shards=6, oversample=3.0)
    default = method_config("zip", options)
    assert isinstance(default, ZipConfig) and (default.compressor, default.k1, default.seed) == ("lzma", 30, 4)
    paper = method_config("zip_paper", options)  # the published program always measures with zlib level 9
    assert isinstance(paper, ZipConfig) and (paper.mode, paper.compressor, paper.level) == ("paper", "zlib", None)
    hierarchical = method_config("zip_hierarchical", options)
    assert isinstance(hierarchical, HierarchicalConfig)
    assert (hierarchical.shards, hierarchical.oversample, hierarchical.zip) == (6, 3.0, default)
    baseline = method_config("longest", options)
    assert baseline == BaselineConfig("longest", 9, seed=4, compressor="lzma")
    assert method_config("random", SelectionOptions(budget=9)).compressor == "zstd"


def test_unknown_methods_and_bad_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown selection method 'best'; expected one of zip, zip_paper"):
        method_config("best", SelectionOptions(budget=10))
    with pytest.raises(ValueError, match="k1 >= k2 >= k3"):
        method_config("zip", SelectionOptions(budget=10, k1=5, k2=10))
    with pytest.raises(ValueError, match="budget must be positive"):
        method_config("dedup", SelectionOptions(budget=0))
