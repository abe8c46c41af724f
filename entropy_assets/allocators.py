"""Native memory freed is given back to the system at once, in every process that imports ``entropy_assets`` before
polars or pyarrow allocates (and in the processes it starts, which inherit the setting).

Polars allocates with jemalloc, pyarrow with mimalloc, and both keep freed pages for reuse for a while. A subset step
at ten million samples frees gigabytes of light columns before it reads the chosen rows; with the allocators'
defaults the process keeps them and its peak is the sum of both phases (the random subset step's max RSS: 2,504 MiB,
against 2,127 MiB with these settings; resident after the light pass: 1,700-2,000 MB, against 780-860 MB). A setting
the environment already holds is left as it is.
"""

from __future__ import annotations

import os

RETURN_FREED_MEMORY: dict[str, str] = {
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",  # polars' jemalloc (its symbols prefixed _rjem_)
    "MIMALLOC_PURGE_DELAY": "0",  # pyarrow's default memory pool
}
"""Environment variables read by the allocators when they start."""


def return_freed_memory() -> None:
    """Set ``RETURN_FREED_MEMORY`` where the environment does not set it already."""
    for name, value in RETURN_FREED_MEMORY.items():
        os.environ.setdefault(name, value)
