"""Materialize assets of a selection pipeline in a process of its own, against the instance in DAGSTER_HOME.

    python materialize_partition.py SETTINGS_JSON STORAGE_DIR KEYS_JSON [PARTITION]

Exits 0 when the run succeeded, 1 when it failed (its error printed on stderr): tests start several at once.
"""

import json
import sys

import dagster as dg

from entropy_assets.dagster import EntropyStorage, SelectionPipeline, selection_pipeline_defs


def main() -> int:
    settings = SelectionPipeline(**json.loads(sys.argv[1]))
    defs = selection_pipeline_defs(settings, storage=EntropyStorage(base_path=sys.argv[2]))
    keys = [dg.AssetKey.from_user_string(key) for key in json.loads(sys.argv[3])]
    partition = sys.argv[4] if len(sys.argv) > 4 else None
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            list(defs.assets or []),
            instance=instance,
            resources=dict(defs.resources or {}),
            selection=keys,
            partition_key=partition,
            raise_on_error=False,
        )
    for failure in result.get_step_failure_events():
        print(failure.step_failure_data.error.message, file=sys.stderr)  # type: ignore[union-attr]
    return 0 if result.success else 1


if __name__ == "__main__":  # hierarchical ZIP spawns processes, which import this file again
    sys.exit(main())
