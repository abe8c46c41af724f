"""Compressors on real text: ratios, batch sizes, and the conditional size of a sample given a chosen set."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from entropy_assets import compression
from entropy_assets.compression import (
    COMPRESSORS,
    LzmaCompressor,
    ZlibCompressor,
    ZlibContext,
    ZstdCompressor,
    compression_ratio,
    join_samples,
    make_compressor,
    set_ratio,
)
from entropy_assets.sources import load_pool

ALPACA = "alpaca52k_en_part02_03252-06382.json"
C4 = "pretrain_c4_demo.jsonl"
WIKI = "pretrain_wiki_demo.txt"

STREAMED_ABOVE = compression._ZSTD_ATTACH_LIMIT
"""zstd measures inputs over this many bytes as streamed frames, smaller ones as sized frames: cover both."""


def _texts(path: Path) -> list[bytes]:
    return [text.encode("utf-8") for text in load_pool(path).frame["text"]]


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with exact ties sharing their mean rank (what Spearman's rho uses)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=ranks)[inverse] / counts[inverse]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_average_ranks(a), _average_ranks(b))[0, 1])


@pytest.fixture(scope="module")
def alpaca_texts(raw_dir: Path) -> list[bytes]:
    """Canonical text of 3130 Alpaca records, mostly under 1 KB each."""
    return _texts(raw_dir / ALPACA)


@pytest.fixture(scope="module")
def c4_texts(raw_dir: Path) -> list[bytes]:
    """300 C4 web documents from 100 bytes to 37 KB."""
    return _texts(raw_dir / C4)


@pytest.fixture(scope="module")
def far_context_body(raw_dir: Path) -> bytes:
    """About 7.4 MB of real text: six Alpaca chunk files other than the one the candidates come from."""
    chunks = sorted(path for path in raw_dir.glob("alpaca52k_en_part*.json") if "part02" not in path.name)
    return b"".join(path.read_bytes() for path in chunks[:6])


# --- ratios and batch sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPRESSORS)
def test_real_text_compresses_and_random_bytes_do_not(name: str, alpaca_texts: list[bytes]) -> None:
    compressor = make_compressor(name)
    text = join_samples(alpaca_texts[:300])
    noise = np.random.default_rng(0).bytes(100_000)

    # English instructions compress between 2x and 4x with every general-purpose compressor.
    assert 2.0 < compressor.ratio(text) < 4.0
    assert compressor.ratio(text) == len(text) / compressor.compressed_size(text)
    # Random bytes cannot be compressed: only the container overhead is added.
    assert 0.99 < compressor.ratio(noise) <= 1.0
    assert compression_ratio(b"", compressor) == 1.0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", COMPRESSORS)
def test_compressed_sizes_match_one_at_a_time(
    name: str, threads: int, alpaca_texts: list[bytes], c4_texts: list[bytes]
) -> None:
    compressor = make_compressor(name)
    longest = sorted(c4_texts, key=len)[-3:]
    items = [*alpaca_texts[:40], *c4_texts[:40], *longest, b""]
    assert all(len(item) > STREAMED_ABOVE for item in longest)

    sizes = compressor.compressed_sizes(items, threads=threads)

    assert sizes.dtype == np.int64
    assert sizes.tolist() == [compressor.compressed_size(item) for item in items]
    assert compressor.compressed_sizes([], threads=threads).tolist() == []


def test_zstd_batch_sizes_do_not_depend_on_the_other_items_in_the_batch(raw_dir: Path, c4_texts: list[bytes]) -> None:
    compressor = make_compressor("zstd")
    wiki_document_run = (raw_dir / WIKI).read_bytes()[:300_000]
    items = [*c4_texts, wiki_document_run]
    assert sum(len(item) > STREAMED_ABOVE for item in c4_texts) >= 5

    assert compressor.compressed_sizes(items).tolist() == [compressor.compressed_size(item) for item in items]


@pytest.mark.parametrize("name", COMPRESSORS)
def test_set_ratio_rises_when_the_set_repeats_itself(name: str, alpaca_texts: list[bytes]) -> None:
    compressor = make_compressor(name)
    samples = alpaca_texts[:40]
    assert len(join_samples(samples)) < 32768  # each repeat stays inside zlib's 32 KiB window

    alone = set_ratio(samples, compressor)
    doubled = set_ratio([*samples, *samples], compressor)

    # The second copy costs almost nothing, so the ratio nearly doubles.
    assert doubled > 1.8 * alone
    assert alone == compressor.ratio(join_samples(samples))
    assert join_samples(samples) == b"\n".join(samples) + b"\n"


# --- zlib context -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chosen_size", [0, 1_000, 100_000])
def test_zlib_context_sizes_equal_full_recompression(chosen_size: int, alpaca_texts: list[bytes]) -> None:
    chosen = join_samples(alpaca_texts[:400])[:chosen_size]
    assert len(chosen) == chosen_size
    candidates = [*alpaca_texts[1000:1040], alpaca_texts[0], alpaca_texts[399], b""]
    context = ZlibCompressor(9).context(chosen)
    alone = len(zlib.compress(chosen, 9))

    assert context.raw_size == chosen_size
    assert context.alone_size() == alone
    assert [context.joint_size(c) for c in candidates] == [len(zlib.compress(chosen + c, 9)) for c in candidates]
    assert [context.conditional_size(c) for c in candidates] == [
        len(zlib.compress(chosen + c, 9)) - alone for c in candidates
    ]
    assert context.joint_sizes(candidates, threads=2).tolist() == [context.joint_size(c) for c in candidates]
    assert context.conditional_sizes(candidates, threads=2).tolist() == [
        context.conditional_size(c) for c in candidates
    ]


def test_zlib_context_at_another_level_matches_that_level(alpaca_texts: list[bytes]) -> None:
    chosen = join_samples(alpaca_texts[:100])
    context = ZlibCompressor(1).context(chosen)
    for candidate in alpaca_texts[500:520]:
        assert context.joint_size(candidate) == len(zlib.compress(chosen + candidate, 1))


def test_zlib_context_extended_in_pieces_matches_one_built_at_once(alpaca_texts: list[bytes]) -> None:
    pieces = [join_samples(alpaca_texts[i : i + 25]) for i in range(0, 200, 25)]
    candidates = [*alpaca_texts[600:620], alpaca_texts[10]]
    grown = ZlibContext(9)
    for piece in pieces:
        before = grown.alone_size()  # cached: extending must forget it
        grown.extend(piece)
        grown.extend(b"")
        assert grown.alone_size() > before
    at_once = ZlibContext(9, b"".join(pieces))

    assert grown.raw_size == at_once.raw_size == sum(len(piece) for piece in pieces)
    assert grown.alone_size() == at_once.alone_size() == len(zlib.compress(b"".join(pieces), 9))
    assert [grown.joint_size(c) for c in candidates] == [at_once.joint_size(c) for c in candidates]
    assert [grown.conditional_size(c) for c in candidates] == [at_once.conditional_size(c) for c in candidates]


# --- zstd context -----------------------------------------------------------------------------------------


def test_zstd_sample_already_chosen_costs_little_and_a_novel_one_most_of_its_size(
    alpaca_texts: list[bytes],
) -> None:
    compressor = ZstdCompressor()
    context = compressor.context(join_samples(alpaca_texts[:300]))
    empty = compressor.context(b"")
    repeats = [text for text in alpaca_texts[:300] if len(text) >= 300][:20]
    novel = [text for text in alpaca_texts[2000:2200] if len(text) >= 300][:20]

    repeat_cost = context.conditional_sizes(repeats).sum()
    novel_cost = context.conditional_sizes(novel).sum()

    assert repeat_cost < 0.1 * empty.conditional_sizes(repeats).sum()
    assert novel_cost > 0.5 * empty.conditional_sizes(novel).sum()
    assert context.raw_size == len(join_samples(alpaca_texts[:300]))


@pytest.mark.parametrize("first_kind", ["short", "long"])
def test_zstd_sees_redundancy_with_the_earliest_sample_of_a_large_context(
    first_kind: str, alpaca_texts: list[bytes], c4_texts: list[bytes], far_context_body: bytes
) -> None:
    # A short first sample is measured as a sized frame, a long one as a streamed frame: both must see it.
    if first_kind == "short":
        first = next(text for text in alpaca_texts if 800 < len(text) < 2000)
    else:
        first = next(text for text in c4_texts if STREAMED_ABOVE < len(text) < 3 * STREAMED_ABOVE)
    chosen = first + b"\n" + far_context_body
    assert len(chosen) > 7_000_000
    assert chosen.count(first) == 1  # seen only at the start, 7 MB before the candidate

    auto = ZstdCompressor()
    fixed_window = ZstdCompressor(window_log=21)
    alone = auto.context(b"").conditional_size(first)
    seen = auto.context(chosen).conditional_size(first)
    not_seen = fixed_window.context(chosen).conditional_size(first)

    assert fixed_window.context(b"").conditional_size(first) == alone
    assert seen < 0.25 * alone
    # A 2 MiB window (the level's own) has long forgotten the first sample.
    assert not_seen > 0.7 * alone


def test_zstd_whole_set_compression_sees_a_repeat_of_its_first_sample(
    alpaca_texts: list[bytes], far_context_body: bytes
) -> None:
    first = next(text for text in alpaca_texts if 800 < len(text) < 2000)
    chosen = first + b"\n" + far_context_body
    assert chosen.count(first) == 1

    auto = ZstdCompressor()
    fixed_window = ZstdCompressor(window_log=21)
    alone = auto.context(b"").conditional_size(first)
    repeat_cost = auto.compressed_size(chosen + first) - auto.compressed_size(chosen)
    windowed_repeat_cost = fixed_window.compressed_size(chosen + first) - fixed_window.compressed_size(chosen)

    # The window grows to cover the whole set (7 MB); a 2 MiB window no longer reaches back to the start.
    assert repeat_cost < 0.25 * alone
    assert windowed_repeat_cost > 0.6 * alone


@pytest.mark.parametrize("chosen_samples", [0, 300])
def test_zstd_conditional_sizes_in_threads_match_one_at_a_time(
    chosen_samples: int, alpaca_texts: list[bytes], c4_texts: list[bytes]
) -> None:
    context = ZstdCompressor().context(join_samples(alpaca_texts[:chosen_samples]))
    candidates = [*alpaca_texts[250:290], *c4_texts[:60], *sorted(c4_texts, key=len)[-3:], b""]
    assert sum(len(c) > STREAMED_ABOVE for c in candidates) >= 3

    one_by_one = [context.conditional_size(c) for c in candidates]

    assert context.conditional_sizes(candidates, threads=2).tolist() == one_by_one
    assert context.conditional_sizes(candidates, threads=1).tolist() == one_by_one
    assert context.conditional_size(b"") == 0
    assert min(one_by_one[:-1]) > 0


def test_zstd_conditional_sizes_rank_candidates_like_full_recompression(alpaca_texts: list[bytes]) -> None:
    compressor = ZstdCompressor()
    chosen = join_samples(alpaca_texts[:800])
    assert 250_000 < len(chosen) < 400_000
    candidates = [text + b"\n" for text in alpaca_texts[1000:1200]]
    base = compressor.compressed_size(chosen)

    conditional = compressor.context(chosen).conditional_sizes(candidates, threads=2)
    recompressed = np.array([compressor.compressed_size(chosen + c) - base for c in candidates])

    assert _spearman(conditional, recompressed) > 0.95
    assert 0.5 < conditional.sum() / recompressed.sum() < 2.0


@pytest.mark.parametrize("prefix_samples", [0, 8])
def test_zlib_marginal_size_equals_full_recompression_after_the_prefix(
    prefix_samples: int, alpaca_texts: list[bytes]
) -> None:
    chosen = join_samples(alpaca_texts[:60])
    prefix = join_samples(alpaca_texts[100 : 100 + prefix_samples])
    candidates = [*alpaca_texts[700:720], alpaca_texts[100], alpaca_texts[5]]
    context = ZlibCompressor(9).context(chosen)
    before = len(zlib.compress(chosen + prefix, 9))

    expected = [len(zlib.compress(chosen + prefix + c, 9)) - before for c in candidates]

    assert [context.marginal_size(prefix, c) for c in candidates] == expected
    assert context.marginal_sizes(prefix, candidates, threads=2).tolist() == expected


@pytest.mark.parametrize("prefix_bytes", [2_000, 3 * STREAMED_ABOVE])
def test_zstd_marginal_size_is_the_growth_of_the_prefix(prefix_bytes: int, alpaca_texts: list[bytes]) -> None:
    # Prefix and prefix + candidate both under the streaming limit, or both over it: one code path each time.
    context = ZstdCompressor().context(join_samples(alpaca_texts[:300]))
    prefix = join_samples(alpaca_texts[400:])[:prefix_bytes]
    candidates = [text for text in alpaca_texts[1000:1100] if len(prefix) + len(text) <= STREAMED_ABOVE][:30]
    if prefix_bytes > STREAMED_ABOVE:
        candidates = alpaca_texts[1000:1030]

    expected = [context.conditional_size(prefix + c) - context.conditional_size(prefix) for c in candidates]

    assert len(candidates) == 30
    assert [context.marginal_size(prefix, c) for c in candidates] == expected
    assert context.marginal_sizes(prefix, candidates, threads=2).tolist() == expected


def test_zstd_marginal_size_sees_a_repeat_inside_the_prefix(alpaca_texts: list[bytes]) -> None:
    context = ZstdCompressor().context(join_samples(alpaca_texts[:300]))
    repeats = [text for text in alpaca_texts[400:460] if len(text) >= 300][:10]
    for prefix in (join_samples(repeats), join_samples(alpaca_texts[400:470])):  # 6 KB, then over the limit
        with_prefix = context.marginal_sizes(prefix, repeats)
        without = context.marginal_sizes(b"", repeats)
        assert with_prefix.sum() < 0.15 * without.sum()
        assert (with_prefix >= 0).all()
    assert len(join_samples(alpaca_texts[400:470])) > STREAMED_ABOVE


def test_remembered_marginal_sizes_belong_to_their_own_context(alpaca_texts: list[bytes]) -> None:
    compressor = ZstdCompressor()
    holds_it = compressor.context(join_samples(alpaca_texts[:300]))
    lacks_it = compressor.context(join_samples(alpaca_texts[1000:1300]))
    prefix = alpaca_texts[2000] + b"\n"
    candidate = max(alpaca_texts[:300], key=len)

    assert holds_it.marginal_size(prefix, candidate) < 0.1 * lacks_it.marginal_size(prefix, candidate)

    # More measurements than a context remembers: the forgotten ones are measured again, to the same sizes.
    candidates = alpaca_texts[1500:2100]
    first = holds_it.marginal_sizes(prefix, candidates)
    again = holds_it.marginal_sizes(prefix, candidates)
    fresh = compressor.context(join_samples(alpaca_texts[:300])).marginal_sizes(prefix, candidates[::-1])[::-1]
    assert first.tolist() == again.tolist() == fresh.tolist()


def test_lzma_context_is_full_recompression(alpaca_texts: list[bytes]) -> None:
    compressor = LzmaCompressor()
    chosen = join_samples(alpaca_texts[:50])
    context = compressor.context(chosen)
    candidates = [alpaca_texts[10], *alpaca_texts[900:905]]

    expected = [compressor.compressed_size(chosen + c) - compressor.compressed_size(chosen) for c in candidates]
    assert context.conditional_sizes(candidates, threads=2).tolist() == expected
    assert expected[0] < min(expected[1:])  # the repeat is the cheapest


# --- construction -----------------------------------------------------------------------------------------


def test_make_compressor_defaults() -> None:
    assert make_compressor() == ZstdCompressor(level=3)
    assert make_compressor("zlib") == ZlibCompressor(level=9)
    assert make_compressor("lzma") == LzmaCompressor(level=6)
    assert make_compressor("zstd", 19, window_log=24).describe() == {
        "compressor": "zstd",
        "level": 19,
        "window_log": 24,
        "long_distance": False,
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("brotli",), {}, r"unknown compressor 'brotli'; expected one of zstd, zlib, lzma"),
        (("zstd", 0), {}, r"zstd level must be 1\.\.22, got 0"),
        (("zstd", 23), {}, r"zstd level must be 1\.\.22, got 23"),
        (("zlib", 10), {}, r"zlib level must be 0\.\.9, got 10"),
        (("zlib", -1), {}, r"zlib level must be 0\.\.9, got -1"),
        (("lzma", 10), {}, r"lzma level must be 0\.\.9, got 10"),
        (("zlib",), {"window_log": 20}, r"window_log and long_distance apply to zstd only, not 'zlib'"),
        (("lzma",), {"long_distance": True}, r"window_log and long_distance apply to zstd only, not 'lzma'"),
        (("zstd",), {"window_log": 9}, r"zstd window_log must be 10\.\.31, got 9"),
    ],
)
def test_make_compressor_rejects_bad_settings(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_compressor(*args, **kwargs)


@pytest.mark.parametrize("threads", [1, 2])
def test_zstd_batch_sizes_equal_one_by_one_sizes(raw_dir: Path, threads: int) -> None:
    """The batch call (many small frames, on threads) and the large-item paths give the sizes of one call each."""
    texts = [t.encode("utf-8") for t in load_pool(raw_dir / "pretrain_c4_demo.jsonl").frame["text"].to_list()]
    items = [b"", *texts[:200], b"".join(texts[:40]), b"".join(texts) * 3, b""]
    assert len(items[-2]) > 1 << 17 and len(items[-3]) > 1 << 14
    for level in (1, 3, 19):
        compressor = make_compressor("zstd", level)
        assert compressor.compressed_sizes(items, threads).tolist() == [compressor.compressed_size(i) for i in items]
    assert make_compressor("zstd").compressed_sizes([b"", b""], threads).tolist() == [9, 9]
    assert make_compressor("zstd").compressed_sizes([], threads).tolist() == []


@pytest.mark.parametrize("threads", [1, 2])
def test_zstd_packed_batch_gives_the_sizes_of_the_same_items_as_bytes(
    threads: int, alpaca_texts: list[bytes], c4_texts: list[bytes]
) -> None:
    """Items packed in one buffer (segments of (offset, length)), as scoring passes Arrow's strings, are measured
    like the same items passed one by one, streamed large ones and empty ones included."""
    import zstandard as zstd

    items = [b"", *alpaca_texts[:300], b"", *c4_texts, b"", b""]
    assert sum(len(item) > STREAMED_ABOVE for item in items) >= 5
    ends = np.cumsum([len(item) for item in items])
    segments = np.column_stack([ends - [len(item) for item in items], [len(item) for item in items]])
    packed = zstd.BufferWithSegments(b"".join(items), segments.astype(np.uint64).tobytes())
    compressor = make_compressor("zstd")

    sizes = compressor.compressed_sizes(packed, threads)

    assert sizes.tolist() == [compressor.compressed_size(item) for item in items]


@pytest.mark.parametrize("threads", [1, 2])
def test_zstd_batch_keeps_the_size_of_empty_items_ending_a_batch(threads: int) -> None:
    # zstd's batch call, split between threads, returns no frame for empty items that end the batch.
    compressor = make_compressor("zstd")
    items = [b"a batch whose second half holds no bytes", b"", b""]
    assert compressor.compressed_sizes(items, threads).tolist() == [compressor.compressed_size(i) for i in items]
