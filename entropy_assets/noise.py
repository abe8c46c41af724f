"""Machine noise of the kinds that real pools carry, planted into real records: what the quality gate is measured
against (``benchmarks/quality_gate.py``, the tests), and what a user can plant into their own data to see what the
gate and each method make of it."""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Mapping, Sequence
from typing import Any

NOISE_KINDS: tuple[str, ...] = ("base64", "base64_mime", "hexdump", "hex", "random", "mojibake", "random_unicode")
"""An encoded attachment on one line, and wrapped at 76 characters; an ``xxd`` dump (offsets, hex words, an ASCII
column), and a hex string; random printable ASCII characters; random bytes read as Latin-1; random code points
below U+3000."""


def noise(kind: str, size: int, rng: random.Random) -> str:
    """About ``size`` characters of machine noise of ``kind`` (one of ``NOISE_KINDS``)."""
    if kind in ("base64", "base64_mime"):
        text = base64.b64encode(rng.randbytes(size * 3 // 4)).decode()
        return text if kind == "base64" else "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    if kind == "hex":
        return rng.randbytes(size // 2).hex()
    if kind == "hexdump":
        data, lines = rng.randbytes(size // 4), []
        for offset in range(0, len(data), 16):
            chunk = data[offset : offset + 16]
            words = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
            shown = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{offset:08x}: {words:<39}  {shown}")
        return "\n".join(lines)
    if kind == "random":
        alphabet = string.ascii_letters + string.digits + string.punctuation
        return "".join(rng.choice(alphabet) for _ in range(size))
    if kind == "mojibake":
        return rng.randbytes(size).decode("latin-1")
    if kind == "random_unicode":
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(size))
    raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")


def noisy_records(
    records: Sequence[Mapping[str, Any]],
    kind: str,
    field: str,
    *,
    sizes: tuple[int, int] = (512, 4096),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Copies of ``records`` whose ``field`` carries a line of noise of ``kind``, of a size drawn log-uniformly
    between ``sizes`` (characters), appended after a newline: one noisy field, the rest of the record real."""
    rng = random.Random(seed)
    low, high = sizes
    noisy = []
    for record in records:
        if not isinstance(record.get(field), str):
            raise ValueError(f"record has no text field {field!r}: {sorted(record)}")
        size = round(low * (high / low) ** rng.random())
        noisy.append({**record, field: f"{record[field]}\n{noise(kind, size, rng)}"})
    return noisy
