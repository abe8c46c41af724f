"""The pipeline's steps as plain functions, between the core (sources, scoring, selection, training, the law) and
the Dagster plugin: each takes typed inputs and returns a frozen result that carries its version, its files
(relative to the storage) and its figures, and turns into metadata and back (``<step>_result``, through ``metadata``).

    raw data --observe_raw_data--> RawDataResult
             --build_pool--> PoolResult
             --score_pool / score_shard--> ScoresResult
             --select_shard--> ShardSelectionResult (zip_hierarchical: one per shard)
             --select_subset--> SubsetResult
             --train_on_subset--> TrainingResult
             --fit_entropy_law / assess_risk--> LawResult, RiskResult

Nothing here knows Dagster: assets, checks and sensors read the upstream result, call one step, and hand back its
metadata; the command line, audits and retention read the same results.
"""

from .holdout import evaluation_frame, holdout_mask
from .law import assess_risk, fit_entropy_law, latest_points
from .law_result import LawResult, RiskResult
from .metadata import ColumnSchema, FilePath, Markdown, MetadataError, Table, markdown_image
from .pool import build_pool, observe_raw_data
from .pool_result import PoolResult, RawDataResult
from .scores import (
    PoolScores,
    ScoringSettings,
    expected_versions,
    gather_scores,
    judge_exclusions,
    score_pool,
    score_shard,
    shard_versions,
    stale_shards,
)
from .scores_result import ScoresResult
from .settings import BACKENDS, LawSettings, TrainingSettings
from .shard_selection import ShardWinners, gather_winners, select_shard
from .shard_selection_result import ShardSelectionResult
from .subset import select_subset
from .subset_result import SubsetResult
from .subset_settings import SubsetSettings
from .training import train_on_subset
from .training_result import TrainingResult
from .workspace import Workspace

__all__ = [
    "BACKENDS",
    "ColumnSchema",
    "FilePath",
    "LawResult",
    "LawSettings",
    "Markdown",
    "MetadataError",
    "PoolResult",
    "PoolScores",
    "RawDataResult",
    "RiskResult",
    "ScoresResult",
    "ScoringSettings",
    "ShardSelectionResult",
    "ShardWinners",
    "SubsetResult",
    "SubsetSettings",
    "Table",
    "TrainingResult",
    "TrainingSettings",
    "Workspace",
    "assess_risk",
    "build_pool",
    "evaluation_frame",
    "expected_versions",
    "fit_entropy_law",
    "gather_scores",
    "gather_winners",
    "holdout_mask",
    "judge_exclusions",
    "latest_points",
    "markdown_image",
    "observe_raw_data",
    "score_pool",
    "score_shard",
    "select_shard",
    "select_subset",
    "shard_versions",
    "stale_shards",
    "train_on_subset",
]
