"""The composition check on real data: ZIP's unstratified subset of a pool a quarter Chinese warns; random's and a
stratified ZIP subset pass, and the subset's metadata gives its mix against the pool's."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.stages import SubsetResult

from .test_pipeline import SUBSET, Graph, settings

MIXED = ("llamafactory_alpaca_zh_demo.json", "llamafactory_alpaca_en_demo.json", "code_alpaca_2k.json")


@pytest.fixture
def mixed_dir(raw_copy: Callable[..., Path]) -> Path:
    return raw_copy(MIXED, "mixed")


def checked(graph: Graph, method: str) -> tuple[SubsetResult, dg.AssetCheckEvaluation]:
    result = graph.run([SUBSET], method)
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "composition"]
    return SubsetResult.from_metadata(graph.metadata(result, SUBSET)), evaluation


def test_the_composition_check_warns_on_a_subset_that_left_the_pool_mix(mixed_dir: Path, tmp_path: Path) -> None:
    pipeline = settings(mixed_dir, methods=("zip", "random"), budgets=(300,), k1=2000, k2=100, k3=50)
    with dg.instance_for_test() as instance:
        graph = Graph(pipeline, tmp_path / "store", instance)
        graph.refresh()
        zip_subset, zip_check = checked(graph, "zip")
        assert not zip_check.passed and zip_check.severity == dg.AssetCheckSeverity.WARN
        assert zip_subset.composition is not None and zip_subset.composition["script"].distance > 0.2
        assert (
            zip_check.partition == "zip"
            and "source, script mix" in str(zip_check.description)
            and "zh_demo.json 65%" in str(zip_check.description)
        )
        _, random_check = checked(graph, "random")
        assert random_check.passed

    # Stratified by source, ZIP keeps the sources' and the scripts' mix, but within each source it still prefers
    # short samples: the length facet warns unless the check is told to judge the other facets only.
    stratified = pipeline.model_copy(update={"stratify": "source"})
    with dg.instance_for_test() as instance:
        graph = Graph(stratified, tmp_path / "stratified", instance)
        graph.refresh()
        subset, check = checked(graph, "zip")
        assert not check.passed and "the subset's length mix" in str(check.description)
    judged = stratified.model_copy(update={"composition_facets": ("source", "format", "script")})
    with dg.instance_for_test() as instance:
        graph = Graph(judged, tmp_path / "judged", instance)
        graph.refresh()
        subset, check = checked(graph, "zip")
        assert check.passed and subset.size == 300
        assert subset.strata is not None and sum(s["selected"] for s in subset.strata.values()) == 300
        assert subset.composition is not None and subset.composition["source"].distance <= 0.02
        assert subset.config["stratify"] == {"by": "source", "weights": None}
