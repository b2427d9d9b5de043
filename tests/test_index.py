"""Corpus index against brute-force scans of random corpora (hypothesis)."""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrollm.index import BACKENDS, CorpusIndex, IndexLoadError, State, StateBatch
from retrollm.index import build as build_module

# Tiny corpora build fastest with pysais (libdivsufsort pays OpenMP start-up per call);
# the first test checks that both backends give identical indexes.
BACKEND = "pysais"

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Alphabets: tiny (many repeats), up to 65k ids (uint16), and ids beyond 65k (uint32).
ALPHABETS = {
    "tiny": (np.uint8, 0, 4),
    "uint16": (np.uint16, 60_000, 65_535),
    "uint24": (np.uint32, 65_530, 16_000_000),  # sorted as 3-byte codes
    "uint32": (np.uint32, 16_000_000, 4_000_000_000),
}


@st.composite
def corpora(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Few distinct ids per corpus, so patterns repeat; empty and one-token documents."""
    dtype, low, high = ALPHABETS[draw(st.sampled_from(sorted(ALPHABETS)))]
    pool = draw(st.lists(st.integers(low, high), min_size=1, max_size=4, unique=True))
    doc = st.lists(st.sampled_from(pool), max_size=12)
    docs = draw(st.lists(st.one_of(doc, st.lists(st.sampled_from(pool), max_size=1)), max_size=8))
    tokens = np.array([t for d in docs for t in d], dtype=dtype)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    return tokens, offsets, docs


def occurrences(docs: list[list[int]], pattern: list[int], only: set[int] | None = None):
    """Global starts of `pattern` inside documents, plus what follows each occurrence."""
    starts, following = [], Counter()
    offset, m = 0, len(pattern)
    for d, doc in enumerate(docs):
        if only is None or d in only:
            for i in range(len(doc) - m + 1):
                if doc[i : i + m] == pattern:
                    starts.append(offset + i)
                    if i + m < len(doc):
                        following[doc[i + m]] += 1
        offset += len(doc)
    return starts, following


def candidate_patterns(tokens: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
    """Every short window of the concatenation (so also ones across document ends)."""
    flat = tokens.tolist()
    patterns = [[]] + [flat[i : i + m] for m in (1, 2, 3, 5) for i in range(len(flat) - m + 1)]
    patterns.append([int(rng.integers(0, 2**31))])
    return patterns


def assert_matches(index: CorpusIndex, docs, patterns, only: set[int] | None = None) -> None:
    n_tokens = sum(len(d) for i, d in enumerate(docs) if only is None or i in only)
    assert index.n_tokens == n_tokens
    for pattern in patterns:
        starts, following = occurrences(docs, pattern, only)
        assert index.count(pattern) == (n_tokens if not pattern else len(starts))
        located = index.locate(pattern)
        if pattern:
            assert located.tolist() == starts
        else:
            assert len(located) == n_tokens and np.all(np.diff(located) > 0)
        assert located.dtype == np.int64
        ids, counts = index.next_tokens(pattern)
        assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == dict(following)
        assert ids.tolist() == sorted(following)
        if pattern and starts:
            assert index.doc_of(np.array(starts)).tolist() == [
                int(np.searchsorted(index.doc_offsets, s, side="right") - 1) for s in starts
            ]


@SETTINGS
@given(corpora(), st.integers(0, 2**32 - 1))
def test_queries_match_brute_force_on_both_backends(corpus, seed) -> None:
    tokens, offsets, docs = corpus
    patterns = candidate_patterns(tokens, np.random.default_rng(seed))
    indexes = [CorpusIndex.build(tokens, offsets, backend=b) for b in BACKENDS]
    for index in indexes:
        assert index.n_docs == len(docs)
        assert_matches(index, docs, patterns)
    first, second = (index._arrays for index in indexes)
    for field in ("tokens", "sa_words", "first_ids", "first_starts"):
        assert np.array_equal(getattr(first, field), getattr(second, field)), field


@SETTINGS
@given(corpora(), st.integers(0, 2**32 - 1))
def test_follow_cache_gives_the_same_answers(corpus, seed) -> None:
    """Force the frequent-prefix continuation cache on, and compare with brute force."""
    tokens, offsets, docs = corpus
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "FOLLOW_CACHE_MIN_COUNT", 1)
        patch.setattr(build_module, "FOLLOW_CACHE_BYTES_PER_TOKEN", 100.0)
        index = CorpusIndex.build(tokens, offsets, backend=BACKEND)
    assert index._arrays.follow_ids.shape[0] == len(
        {pair for d in docs for pair in itertools.pairwise(d)}
    )
    assert_matches(index, docs, candidate_patterns(tokens, np.random.default_rng(seed)))
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder) / "index")
        loaded = CorpusIndex.load(Path(folder) / "index")
        assert_matches(loaded, docs, candidate_patterns(tokens, np.random.default_rng(seed)))


@SETTINGS
@given(corpora(), st.data())
def test_extract_and_doc_of(corpus, data) -> None:
    tokens, offsets, docs = corpus
    index = CorpusIndex.build(tokens, offsets, backend=BACKEND)
    n = len(tokens)
    start = data.draw(st.integers(0, n))
    end = data.draw(st.integers(start, n))
    got = index.extract(start, end)
    assert got.tolist() == tokens[start:end].tolist() and got.dtype == np.int64
    if n:
        positions = np.arange(n)
        expected = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
        assert index.doc_of(positions).tolist() == expected.tolist()


@SETTINGS
@given(corpora(), st.data())
def test_restrict_matches_brute_force_over_the_subset(corpus, data) -> None:
    tokens, offsets, docs = corpus
    index = CorpusIndex.build(tokens, offsets, backend=BACKEND)
    chosen = data.draw(st.lists(st.integers(0, max(len(docs) - 1, 0)), max_size=6))
    chosen = [c for c in chosen if c < len(docs)]
    sub = index.restrict(chosen)
    assert sub.doc_ids.tolist() == sorted(set(chosen))
    assert sub.n_docs == len(set(chosen))
    patterns = candidate_patterns(tokens, np.random.default_rng(0))
    assert_matches(sub, docs, patterns, only=set(chosen))
    if len(set(chosen)) > 1:  # a restriction of a restriction keeps global coordinates
        inner = sorted(set(chosen))[1:]
        assert_matches(sub.restrict(inner), docs, patterns, only=set(inner))


@SETTINGS
@given(corpora(), st.data())
def test_incremental_extend_equals_from_scratch(corpus, data) -> None:
    tokens, offsets, _ = corpus
    index = CorpusIndex.build(tokens, offsets, backend=BACKEND)
    flat = tokens.tolist()
    prefixes = [flat[i : i + 4] for i in range(len(flat))] + [[7, 7]]
    prefixes = data.draw(st.lists(st.sampled_from(prefixes), min_size=1, max_size=5))
    width = max(len(p) for p in prefixes)
    batch = StateBatch.of([index.root()] * len(prefixes))
    for depth in range(width):
        step = [p[depth] if depth < len(p) else 0 for p in prefixes]
        batch = index.extend(batch, np.array(step))
        for k, prefix in enumerate(prefixes):
            if depth < len(prefix):
                state = batch[k]
                assert state == index.state(prefix[: depth + 1]) or (
                    not state.alive and not index.state(prefix[: depth + 1]).alive
                )
                ids, counts = index.continuations(state)
                expected = index.next_tokens(prefix[: depth + 1])
                assert ids.tolist() == expected[0].tolist()
                assert counts.tolist() == expected[1].tolist()
                assert index.positions(state).tolist() == index.locate(prefix[: depth + 1]).tolist()
    # Where each candidate continuation occurs, and inside which windows.
    if prefixes[0]:
        state = index.state(prefixes[0])
        positions, following = index.positions_with_next(state)
        for candidate in set(following.tolist()) - {-1}:
            chosen = index.positions(index.extend(state, [candidate])[0])
            assert chosen.tolist() == positions[following == candidate].tolist()
        assert np.sum(following != -1) == index.continuations(state)[1].sum()
        starts = data.draw(st.lists(st.integers(0, len(flat)), min_size=1, max_size=4))
        ends = [s + data.draw(st.integers(0, 6)) for s in starts]
        expected = [
            sum(a <= p and p + state.depth <= b for p in positions)
            for a, b in zip(starts, ends, strict=True)
        ]
        assert index.window_counts(state, starts, ends).tolist() == expected
    # One state tried with every candidate continuation at once.
    state = index.state(prefixes[0][:1])
    ids, counts = index.continuations(state)
    fanned = index.extend(state, ids)
    assert fanned.counts.tolist() == counts.tolist()


@SETTINGS
@given(corpora())
def test_save_load_round_trip(corpus) -> None:
    tokens, offsets, docs = corpus
    index = CorpusIndex.build(tokens, offsets, backend=BACKEND, tokenizer_fingerprint="tok-1")
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder) / "index")
        loaded = CorpusIndex.load(Path(folder) / "index", expected_tokenizer_fingerprint="tok-1")
        assert loaded.tokenizer_fingerprint == "tok-1"
        assert loaded.n_docs == index.n_docs and loaded.n_tokens == index.n_tokens
        assert np.array_equal(loaded.doc_offsets, index.doc_offsets)
        assert_matches(loaded, docs, candidate_patterns(tokens, np.random.default_rng(1)))


def test_large_alphabets_at_scale() -> None:
    """Thousands of tokens over 65k-wide (uint16) and >65k (uint32) vocabularies."""
    rng = np.random.default_rng(7)
    for dtype, high in ((np.uint16, 65_535), (np.uint32, 1 << 31)):
        vocab = rng.integers(0, high, size=300)
        tokens = vocab[np.minimum(rng.zipf(1.3, 6000), 300) - 1].astype(dtype)
        offsets = np.unique(np.concatenate([[0, 6000], rng.integers(0, 6000, 60)]))
        docs = [tokens[a:b].tolist() for a, b in itertools.pairwise(offsets)]
        index = CorpusIndex.build(tokens, offsets, backend=BACKEND)
        patterns = [tokens[i : i + m].tolist() for m in (1, 2, 4, 16) for i in range(0, 6000, 97)]
        assert_matches(index, docs, patterns)


# ------------------------------------------------------------------ failures


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    tokens = np.arange(1000, dtype=np.uint16) % 37
    CorpusIndex.build(tokens, [0, 400, 1000], tokenizer_fingerprint="fp").save(tmp_path / "ix")
    return tmp_path / "ix"


@pytest.mark.parametrize("name", ["tokens.npy", "suffix_array.npy", "doc_offsets.npy"])
def test_truncated_file_fails_naming_it(saved: Path, name: str) -> None:
    file = saved / name
    file.write_bytes(file.read_bytes()[:-8])
    with pytest.raises(IndexLoadError, match=re.escape(name)):
        CorpusIndex.load(saved)


def test_corrupt_header_fails_naming_the_file(saved: Path) -> None:
    file = saved / "suffix_array.npy"
    data = bytearray(file.read_bytes())
    data[:6] = b"garbag"
    file.write_bytes(bytes(data))
    with pytest.raises(IndexLoadError, match=r"suffix_array\.npy"):
        CorpusIndex.load(saved)


def test_corrupt_contents_caught_when_verifying(saved: Path) -> None:
    file = saved / "tokens.npy"
    data = bytearray(file.read_bytes())
    data[200] ^= 0xFF
    file.write_bytes(bytes(data))
    CorpusIndex.load(saved)  # sizes still match: only hashing can tell
    with pytest.raises(IndexLoadError, match=r"tokens\.npy"):
        CorpusIndex.load(saved, verify=True)


def test_meta_problems_fail_naming_meta(saved: Path) -> None:
    meta = saved / "meta.json"
    with pytest.raises(IndexLoadError, match=r"meta\.json"):
        CorpusIndex.load(saved, expected_tokenizer_fingerprint="other")
    meta.write_text("{not json")
    with pytest.raises(IndexLoadError, match=r"meta\.json"):
        CorpusIndex.load(saved)
    meta.unlink()
    with pytest.raises(IndexLoadError, match=r"meta\.json"):
        CorpusIndex.load(saved)


def test_inconsistent_meta_fails(saved: Path) -> None:
    meta_file = saved / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["n_docs"] = 3
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(IndexLoadError, match=r"doc_offsets\.npy"):
        CorpusIndex.load(saved)


def test_load_is_memory_mapped(saved: Path) -> None:
    loaded = CorpusIndex.load(saved)
    assert isinstance(loaded._arrays.tokens.base, np.memmap)
    assert loaded.count([1, 2, 3]) == 27


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="doc_offsets"):
        CorpusIndex.build(np.zeros(3, np.uint16), [0, 2])
    with pytest.raises(ValueError, match="non-decreasing"):
        CorpusIndex.build(np.zeros(3, np.uint16), [0, 2, 1, 3])
    with pytest.raises(ValueError, match="backend"):
        CorpusIndex.build(np.zeros(3, np.uint16), [0, 3], backend="nope")
    with pytest.raises(ValueError, match="too large"):
        CorpusIndex.build(np.array([2**32 - 1], np.uint32), [0, 1])
    index = CorpusIndex.build(np.arange(5, dtype=np.uint16), [0, 5])
    with pytest.raises(ValueError, match="outside"):
        index.restrict([1])
    with pytest.raises(ValueError):
        index.extract(3, 9)
    with pytest.raises(ValueError):
        index.doc_of([5])
    with pytest.raises(ValueError, match="restricted"):
        index.restrict([0]).save("/nonexistent")


def test_empty_corpus_and_dead_states() -> None:
    for offsets in ([0], [0, 0, 0]):
        index = CorpusIndex.build(np.zeros(0, np.uint16), offsets)
        assert index.count([]) == 0 and index.count([1]) == 0
        assert index.next_tokens([])[0].size == 0 and index.locate([1]).size == 0
    index = CorpusIndex.build(np.array([5, 6, 5], np.uint16), [0, 3])
    dead = index.state([6, 6])
    assert not dead.alive and dead == State(0, 0, 2)
    assert index.extend(dead, [5]).counts.tolist() == [0]
    assert index.continuations(dead)[0].size == 0
    assert index.count([-1]) == 0 and index.count([70_000]) == 0 and index.count([65_535]) == 0
