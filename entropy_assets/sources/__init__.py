"""Reading data files into a pool frame, and writing a selection back in the records' original form.

A pool is a polars frame with one row per kept record (see ``POOL_SCHEMA``): its canonical text, the text's
size and content hash, and the original record as JSON so that a selection can be written back unchanged.
Supported inputs: ``.json`` (an array of records), ``.jsonl``/``.ndjson``, gzip of either, ``.parquet``,
``.txt`` (one document per non-blank line), folders saved by ``datasets.Dataset.save_to_disk``, and dataset
names that ``datasets.load_dataset`` resolves.

Hostile input ends in a ``SourceError`` naming the file and the line or record, or in counted drops with
``skip_malformed``: line formats are streamed, so a huge line costs at most ``max_record_bytes`` of memory; JSON
nested deeper than ``MAX_JSON_DEPTH`` is malformed; a file that vanishes or changes while read is an error.

The package, by job: ``discovery`` (which files a list of paths means), ``readers`` (one per format),
``builder`` (records to pool rows, drops counted), ``columns`` (which column mapping reads which source),
``pool`` (loading and storing pools), ``writers`` (records back in their own form) and ``atomic`` (files that
appear whole or not at all). The data versions of files are
in ``entropy_assets.versions``.
"""

from .atomic import STALE_TEMPORARY_SECONDS, write_atomically
from .builder import MAX_JSON_DEPTH, MAX_RECORD_BYTES, POOL_SCHEMA, LoadedPool, LoadReport
from .columns import SourceColumns, labels_column
from .discovery import SUPPORTED_SUFFIXES, Paths, data_files, source_files
from .errors import SourceError
from .pool import load_hf_dataset, load_pool, pool_from_records, read_pool, write_pool
from .readers import MAX_JSON_FILE_BYTES
from .writers import AS_INPUT, WRITABLE_SUFFIXES, export_suffix, write_records

__all__ = [
    "AS_INPUT",
    "MAX_JSON_DEPTH",
    "MAX_JSON_FILE_BYTES",
    "MAX_RECORD_BYTES",
    "POOL_SCHEMA",
    "STALE_TEMPORARY_SECONDS",
    "SUPPORTED_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "LoadReport",
    "LoadedPool",
    "Paths",
    "SourceColumns",
    "SourceError",
    "data_files",
    "export_suffix",
    "labels_column",
    "load_hf_dataset",
    "load_pool",
    "pool_from_records",
    "read_pool",
    "source_files",
    "write_atomically",
    "write_pool",
    "write_records",
]
