"""The storage resource: where a pipeline's files live, configured in Dagster; the steps that assets run get its
plain ``Storage`` (``entropy_assets.storage``) and know nothing of Dagster.

Local paths by default; any fsspec location through ``universal_pathlib``. polars is pinned below 2, and the
assets read and write through this resource rather than dagster-polars.
"""

from __future__ import annotations

import logging

import dagster as dg

from entropy_assets.stages import Workspace
from entropy_assets.storage import Storage


class EntropyStorage(dg.ConfigurableResource):
    """The base path of a pipeline's outputs (a local folder or an fsspec URL, never with a credential in it). A
    failed write never replaces a good file.

    A remote store is reached through its own environment variables, in every process that runs a step (for
    ``s3://``: ``AWS_ENDPOINT_URL`` for an S3-compatible endpoint, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or
    an instance role, ``AWS_REGION``): s3fs and polars read the same ones, and nothing of them is in the settings or
    in any output's metadata."""

    base_path: str = "entropy_assets_storage"

    def storage(self) -> Storage:
        """The storage this resource configures; refuses a base path that holds a credential."""
        return Storage(self.base_path)

    def workspace(self, pipeline: str, log: logging.Logger) -> Workspace:
        """Where a step of ``pipeline`` writes (this storage) and reports (``log``, a run's log)."""
        return Workspace(pipeline, self.storage(), log)
