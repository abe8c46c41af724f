"""Choose LLM training data by compression (ZIP, the Entropy Law) and track it as Dagster assets."""

from importlib.metadata import PackageNotFoundError, version

from entropy_assets.allocators import return_freed_memory

return_freed_memory()  # before polars or pyarrow allocate (see ``allocators``)

try:
    __version__ = version("entropy-assets")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
