"""The beta and preview Dagster APIs the plugin builds on by choice, with their warnings silenced where it calls
them: a user's definitions load without warnings that are not theirs to act on. docs/dagster-apis.md says which
APIs these are and why they are used.

Only these messages are silenced, and only while the plugin's own definitions are built: any other Dagster warning,
and the same APIs called from a user's code, still warn.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

DELIBERATE: tuple[tuple[type[Warning], str], ...] = (
    # raw_data: an observable source asset, so that a data version comes from the files' content hashes.
    (dg.BetaWarning, "Function `observable_source_asset` is currently in beta"),
    # quality, composition and entropy_law_risk: a check evaluated per partition of the asset it checks.
    (dg.PreviewWarning, "Specifying a partitions_def on an AssetCheckSpec is currently in preview"),
    # shard_selection at several budgets: each (budget, shard) partition reads the scores of its shard.
    (dg.BetaWarning, "Class `MultiToSingleDimensionPartitionMapping` is currently in beta"),
    # training_run's pipes backend: Dagster's Pipes client calls a preview method of its own at each launch.
    (dg.PreviewWarning, "Function `PipesMessageReader.expected_writer_count` is currently in preview"),
)


@contextmanager
def deliberate_previews() -> Iterator[None]:
    """Within: the warnings of ``DELIBERATE`` are ignored (as a decorator: while the function runs)."""
    with warnings.catch_warnings():
        for category, message in DELIBERATE:
            warnings.filterwarnings("ignore", message=re.escape(message), category=category)
        yield
