"""Random at several seeds: partitions of their own, each a different draw, so that the law can weigh a method
against random's spread."""

from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.stages import SubsetResult

from .test_pipeline import SUBSET, Graph, settings


def test_random_seeds_are_partitions_with_seeds_of_their_own(data_dir: Path, tmp_path: Path) -> None:
    pipeline = settings(data_dir, methods=("zip", "random"), random_seeds=3, seed=7)
    assert pipeline.partitions.get_partition_keys() == ["zip", "random", "random_seed1", "random_seed2"]
    assert [pipeline.subset(key).config.seed for key in ("random", "random_seed1", "random_seed2")] == [7, 8, 9]
    assert pipeline.subset("random_seed2").folder == "random_seed2_60"
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.refresh()
        drawn = {
            key: SubsetResult.from_metadata(graph.metadata(graph.run([SUBSET], key), SUBSET))
            for key in ("random", "random_seed1")
        }
    assert all(subset.size == 60 for subset in drawn.values())
    assert drawn["random"].version != drawn["random_seed1"].version


@pytest.mark.parametrize("overrides", [{"random_seeds": 0}, {"random_seeds": 2, "methods": ("zip",)}])
def test_random_seeds_need_random(data_dir: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="random_seeds must be 1 or more"):
        settings(data_dir, **overrides)
