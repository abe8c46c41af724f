"""Hostile inputs side by side with normal files of similar size: the outcome of ``load_pool`` (the first line of
its error, or the counts) and the peak RSS of a child process loading each, median of ``--repeat`` runs.

Peak RSS is the child's ``VmHWM`` (``/proc/self/status``): ``ru_maxrss`` of a child, and so ``RUSAGE_CHILDREN``,
starts from the parent's RSS at fork time on Linux, which would hide a small loader's peak.

    .venv/bin/python benchmarks/hostile_inputs.py [--repeat 3] [--size-mb 100] [--package-root DIR]

``--package-root`` loads ``entropy_assets`` from another checkout (e.g. an older commit extracted with
``git archive``), to compare behaviours in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw"

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from entropy_assets.sources import load_pool
try:
    report = load_pool(sys.argv[2], skip_malformed=sys.argv[3] == "skip").report
    outcome = f"kept {report.records_kept}, dropped {report.dropped}, invalid_utf8 {report.invalid_utf8}"
except BaseException as exc:
    outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
print(outcome.replace(sys.argv[2], "<file>")[:160])
"""


def _big_line_jsonl(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        out.write(b'{"text": "first"}\n{"text": "')
        out.write(b"x" * size)
        out.write(b'"}\n{"text": "last"}\n')


def _many_lines_jsonl(path: Path, size: int) -> None:
    line = (RAW / "pretrain_c4_demo.jsonl").read_bytes()
    with open(path, "wb") as out:
        for _ in range(max(1, size // len(line))):
            out.write(line)


def _big_string_json(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        out.write(b'[{"text": "first"}, {"text": "')
        out.write(b"x" * size)
        out.write(b'"}]')


def _many_records_json(path: Path, size: int) -> None:
    records = json.loads((RAW / "llamafactory_alpaca_en_demo.json").read_bytes())
    copies = max(1, size // (RAW / "llamafactory_alpaca_en_demo.json").stat().st_size)
    path.write_text(json.dumps(records * copies))


def _bytes(data: bytes) -> Callable[[Path, int], None]:
    return lambda path, size: path.write_bytes(data)


def _random_bytes(path: Path, size: int) -> None:
    path.write_bytes(random.Random(0).randbytes(size))


def _truncated_gzip(path: Path, size: int) -> None:
    data = gzip.compress((RAW / "pretrain_c4_demo.jsonl").read_bytes(), mtime=0)
    path.write_bytes(data[: len(data) // 2])


def _corrupt_gzip(path: Path, size: int) -> None:
    data = bytearray(gzip.compress((RAW / "pretrain_c4_demo.jsonl").read_bytes(), mtime=0))
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncated_parquet(path: Path, size: int) -> None:
    import polars as pl

    records = [json.loads(line) for line in (RAW / "pretrain_c4_demo.jsonl").read_text().splitlines()]
    pl.DataFrame(records).write_parquet(path)
    path.write_bytes(path.read_bytes()[:-100])


def _truncated_json(path: Path, size: int) -> None:
    data = (RAW / "llamafactory_dpo_en_demo.json").read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _truncated_jsonl(path: Path, size: int) -> None:
    data = (RAW / "pretrain_c4_demo.jsonl").read_bytes()
    path.write_bytes(data[: len(data) // 3])


def cases(size: int) -> list[tuple[str, str, Callable[[Path, int], None]]]:
    """(kind, file name, writer): each hostile kind, and normal files of similar size as baselines."""
    deep = b'{"text": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    return [
        ("baseline: normal jsonl of the same size", "normal.jsonl", _many_lines_jsonl),
        ("one huge line in a jsonl", "huge_line.jsonl", _big_line_jsonl),
        ("baseline: normal json of the same size", "normal.json", _many_records_json),
        ("one huge string in a json", "huge_string.json", _big_string_json),
        ("100,000 levels of [ in a jsonl line", "deep.jsonl", _bytes(deep)),
        ("100,000 levels of [ in a json", "deep.json", _bytes(b"[" + deep + b"]")),
        ("integer of 5000 digits", "bigint.jsonl", _bytes(b'{"text": "a", "n": ' + b"9" * 5000 + b"}\n")),
        ("NaN and Infinity", "nan.jsonl", _bytes(b'{"text": "a", "n": NaN, "m": -Infinity}\n')),
        ("lone surrogate in a key", "surrogate.jsonl", _bytes(b'{"text": "a", "\\udc80": 1}\n')),
        ("BOM and CRLF", "bom_crlf.jsonl", _bytes(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b"}\r\n')),
        ("random bytes as .jsonl", "random.jsonl", _random_bytes),
        ("random bytes as .json", "random.json", _random_bytes),
        ("random bytes as .json.gz", "random.json.gz", _random_bytes),
        ("random bytes as .parquet", "random.parquet", _random_bytes),
        ("truncated gzip", "cut.jsonl.gz", _truncated_gzip),
        ("corrupt gzip (one byte flipped)", "flipped.jsonl.gz", _corrupt_gzip),
        ("truncated parquet", "cut.parquet", _truncated_parquet),
        ("truncated json", "cut.json", _truncated_json),
        ("truncated jsonl", "cut.jsonl", _truncated_jsonl),
        ("empty .parquet", "empty.parquet", _bytes(b"")),
        ("empty .json.gz", "empty.json.gz", _bytes(b"")),
    ]


def measure(root: str, path: Path, skip: bool) -> tuple[float, str]:
    """Peak RSS (MB) of a child process loading ``path``, and the outcome it reports."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, root, str(path), "skip" if skip else "strict"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    peak_kb, outcome = out.stdout.split("\n", 1)
    return int(peak_kb) / 1024, outcome.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=100, help="size of the huge record and of the baselines")
    parser.add_argument("--package-root", default=str(Path(__file__).resolve().parents[1]))
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    tried = faults = 0
    with tempfile.TemporaryDirectory() as folder:
        print(f"package: {args.package_root}; median of {args.repeat}; sizes ~{args.size_mb} MB")
        print(f"{'input':42} {'file MB':>8} {'skip: peak MB':>14}  outcome (skip_malformed=True | strict)")
        for kind, name, write in cases(size):
            path = Path(folder) / name
            write(path, size)
            peaks, outcome = [], ""
            for _ in range(args.repeat):
                peak, outcome = measure(args.package_root, path, skip=True)
                peaks.append(peak)
            _, strict = measure(args.package_root, path, skip=False)
            tried += args.repeat + 1
            faults += not kind.startswith("baseline")
            mb = os.path.getsize(path) / 1e6
            print(f"{kind:42} {mb:8.1f} {statistics.median(peaks):14.0f}  {outcome} | {strict}")
            path.unlink()
    print(f"loads: {tried}; hostile inputs: {faults}")


if __name__ == "__main__":
    main()
