"""Whether a method beats random, on synthetic runs whose answer is known."""

from __future__ import annotations

import pytest

from entropy_assets.comparison import compare_methods
from entropy_assets.entropy_law import LawPoint


def run(method: str, z: float | None, *, budget: int = 100, version: str = "v2", at: float = 10.0) -> LawPoint:
    return LawPoint(
        ratio=2.5, loss=3.0, performance=z, method=method, budget=budget, data_version=version, timestamp=at
    )


RANDOM = [run("random", 3.00), run("random_seed1", 3.02), run("random_seed2", 2.98)]  # mean 3.00, sd 0.02


def verdicts(points: list[LawPoint]) -> dict[tuple[str, int], str]:
    return {(row.method, row.budget): row.verdict for row in compare_methods(points).methods}


def test_a_method_beats_random_only_beyond_twice_its_spread() -> None:
    points = [*RANDOM, run("zip", 2.90), run("zip_paper", 2.97), run("longest", 3.10), run("dedup", 3.039)]
    comparison = compare_methods(points)
    spread = comparison.random[100]
    assert spread.seeds == 3 and spread.performance == pytest.approx(3.0)
    assert spread.performance_sd == pytest.approx(0.02)
    assert verdicts(points) == {
        ("zip", 100): "beats random",  # 5 sd below
        ("zip_paper", 100): "within random's spread",  # 1.5 sd below
        ("longest", 100): "worse than random",  # 5 sd above
        ("dedup", 100): "within random's spread",  # 1.95 sd above
    }
    summary = comparison.summary()
    assert "zip at 100: beats random on Z (2.9000 against random's 3.0000 ± 0.0200 over 3 seeds, -5.0 sd)" in summary
    assert "zip_paper at 100: within random's spread" in summary and "longest" not in summary
    table = comparison.markdown()
    assert "| 100 | random (3 seeds) | 2.5000 | 3.0000 | 3.0000 ± 0.0200 | | |" in table
    assert "| 100 | zip | 2.5000 | 3.0000 | 2.9000 | -5.0 | beats random |" in table


def test_without_a_spread_there_is_no_verdict() -> None:
    assert verdicts([run("random", 3.0), run("zip", 2.0)]) == {
        ("zip", 100): "no verdict: random needs two seeds or more (random_seeds)"
    }
    assert verdicts([*RANDOM, run("zip", 2.0, budget=200)]) == {
        ("zip", 200): "no verdict: no random run at this budget"
    }
    assert verdicts([*RANDOM, run("zip", None)]) == {("zip", 100): "no verdict: no held-out loss (Z)"}


def test_only_the_latest_data_version_and_run_count() -> None:
    older = [run("random", 5.0, version="v1", at=1.0), run("zip", 9.0, version="v1", at=1.0)]
    rerun = [run("zip", 3.5, at=5.0), run("zip", 2.9, at=20.0)]  # the latest run of a partition counts
    assert verdicts([*older, *RANDOM, *rerun]) == {("zip", 100): "beats random"}
