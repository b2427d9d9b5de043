"""A sharded index answers exactly what one CorpusIndex over the same documents answers
(hypothesis: random corpora cut into 1, 2 and 7 shards at random document boundaries),
and the decoder produces the same predictions over either."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrollm.index import (
    CorpusIndex,
    IndexLoadError,
    ShardedIndex,
    build_sharded,
    build_shards,
    load_index,
    shard_plan,
)
from tests.decoding_support import Setting, corpus_tokens, fixture_questions, one_torch_thread

BACKEND = "pysais"  # tiny corpora: see tests/test_index.py
SHARD_COUNTS = (1, 2, 7)
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Ids near 65,535 put some shards at uint16 and others at uint32 (65,535 itself needs
# the wider width): a restriction across them must still agree.
POOLS = {"tiny": (0, 4), "uint16-edge": (65_530, 65_540), "wide": (16_000_000, 4_000_000_000)}


@st.composite
def sharded_corpora(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Tokens, offsets (empty and one-token documents included) and, per shard count,
    random document cuts (a repeated cut is an empty shard)."""
    low, high = POOLS[draw(st.sampled_from(sorted(POOLS)))]
    pool = draw(st.lists(st.integers(low, high), min_size=1, max_size=4, unique=True))
    docs = draw(st.lists(st.lists(st.sampled_from(pool), max_size=10), max_size=12))
    tokens = np.array([t for d in docs for t in d], dtype=np.uint32)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    cuts = {}
    for k in SHARD_COUNTS:
        inner = draw(st.lists(st.integers(0, len(docs)), min_size=k - 1, max_size=k - 1))
        cuts[k] = np.array([0, *sorted(inner), len(docs)], dtype=np.int64)
    return tokens, offsets, cuts


def patterns_of(tokens: np.ndarray) -> list[list[int]]:
    """Every short window of the concatenation (also across document and shard ends)."""
    flat = tokens.tolist()
    found = {(): None} | {
        tuple(flat[i : i + m]): None for m in (1, 2, 3, 5) for i in range(len(flat))
    }
    return [*map(list, found), [123_456_789]]


def indexes(tokens: np.ndarray, offsets: np.ndarray, cuts: dict[int, np.ndarray]):
    full = CorpusIndex.build(tokens, offsets, backend=BACKEND)
    return full, [build_shards(tokens, offsets, cuts[k], BACKEND) for k in SHARD_COUNTS]


def same(a: tuple[np.ndarray, ...] | np.ndarray, b: tuple[np.ndarray, ...] | np.ndarray) -> None:
    """Equal arrays, dtypes included (tuples of arrays compare element by element)."""
    pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
    for x, y in pairs:
        assert x.dtype == y.dtype and x.tolist() == y.tolist()


def assert_same_queries(sharded: Any, full: Any, patterns: list[list[int]]) -> None:
    assert (sharded.n_tokens, sharded.n_docs) == (full.n_tokens, full.n_docs)
    same(sharded.doc_offsets, full.doc_offsets)
    same(sharded.doc_ids, full.doc_ids)
    for pattern in patterns:
        assert sharded.count(pattern) == full.count(pattern)
        same(sharded.next_tokens(pattern), full.next_tokens(pattern))
        same(sharded.locate(pattern), full.locate(pattern))
        one, other = sharded.state(pattern), full.state(pattern)
        assert (one.count, one.alive, one.depth) == (other.count, other.alive, other.depth)
        same(sharded.positions_and_docs(one), full.positions_and_docs(other))
        same(sharded.positions_with_next(one), full.positions_with_next(other))
    total = int(full.doc_offsets[-1])
    if total:
        same(sharded.doc_of(np.arange(total)), full.doc_of(np.arange(total)))
    for start in range(0, total + 1, 3):
        for end in (start, min(total, start + 1), min(total, start + 7), total):
            same(sharded.extract(start, end), full.extract(start, end))


@SETTINGS
@given(sharded_corpora())
def test_pattern_queries_and_corpus_access_match(corpus) -> None:
    tokens, offsets, cuts = corpus
    full, sharded = indexes(tokens, offsets, cuts)
    for index, k in zip(sharded, SHARD_COUNTS, strict=True):
        assert index.n_shards == k
        assert_same_queries(index, full, patterns_of(tokens))


@SETTINGS
@given(sharded_corpora(), st.data())
def test_incremental_states_match(corpus, data) -> None:
    tokens, offsets, cuts = corpus
    full, sharded = indexes(tokens, offsets, cuts)
    flat = tokens.tolist()
    prefixes = [flat[i : i + 4] for i in range(len(flat))] + [[7, 7]]
    prefixes = data.draw(st.lists(st.sampled_from(prefixes), min_size=1, max_size=5))
    width = max(len(p) for p in prefixes)
    starts = data.draw(st.lists(st.integers(0, len(flat)), min_size=1, max_size=4))
    ends = [s + data.draw(st.integers(0, 6)) for s in starts]
    for index in sharded:
        ours, theirs = [index.root()] * len(prefixes), [full.root()] * len(prefixes)
        for depth in range(width):
            step = [p[depth] if depth < len(p) else 0 for p in prefixes]
            # A plain list of states, as the decoder passes them, then the batch itself.
            batch, reference = index.extend(ours, step), full.extend(theirs, step)
            same(batch.counts, reference.counts)
            same(batch.alive, reference.alive)
            ours, theirs = [batch[k] for k in range(len(batch))], reference
            for one, other in zip(ours, (reference[k] for k in range(len(reference))), strict=True):
                same(index.continuations(one), full.continuations(other))
                same(index.positions(one), full.positions(other))
                same(index.positions_and_docs(one), full.positions_and_docs(other))
                same(index.positions_with_next(one), full.positions_with_next(other))
                same(
                    index.window_counts(one, starts, ends), full.window_counts(other, starts, ends)
                )
        state = index.state(prefixes[0][:1])
        ids, counts = index.continuations(state)
        fanned = index.extend(state, ids)  # one state tried with every continuation
        same(fanned.counts, counts)
        twice = index.extend(index.extend(index.root(), ids), ids)  # each id, then itself
        same(twice.counts, full.extend(full.extend(full.root(), ids), ids).counts)


@SETTINGS
@given(sharded_corpora(), st.data())
def test_restrict_to_documents_of_any_shards_matches(corpus, data) -> None:
    tokens, offsets, cuts = corpus
    full, sharded = indexes(tokens, offsets, cuts)
    n_docs = len(offsets) - 1
    chosen = data.draw(st.lists(st.integers(0, max(n_docs - 1, 0)), max_size=6))
    chosen = [c for c in chosen if c < n_docs]
    reference = full.restrict(chosen)
    patterns = patterns_of(tokens)
    for index in sharded:
        view = index.restrict(chosen)
        assert_same_queries(view, reference, patterns)
        for pattern in patterns:  # one suffix array over the same documents: same ranges
            assert view.state(pattern) == reference.state(pattern)
        if len(set(chosen)) > 1:  # a restriction of a restriction stays global
            inner = sorted(set(chosen))[1:]
            assert_same_queries(view.restrict(inner), full.restrict(inner), patterns)
        with pytest.raises(ValueError, match="outside"):
            index.restrict([n_docs])


@settings(SETTINGS, max_examples=10)
@given(sharded_corpora())
def test_save_load_memory_maps_and_answers_the_same(corpus) -> None:
    tokens, offsets, cuts = corpus
    full, sharded = indexes(tokens, offsets, cuts)
    with tempfile.TemporaryDirectory() as folder:
        for index in sharded:
            index.save(Path(folder) / "sharded")
            loaded = load_index(Path(folder) / "sharded")
            assert isinstance(loaded, ShardedIndex) and loaded.n_shards == index.n_shards
            if loaded.n_tokens:
                assert any(isinstance(s._arrays.tokens.base, np.memmap) for s in loaded.shards)
            assert_same_queries(loaded, full, patterns_of(tokens)[:40])


@SETTINGS
@given(sharded_corpora(), st.integers(1, 12), st.integers(1, 30))
def test_shard_plans_cut_at_document_boundaries(corpus, per_docs, per_tokens) -> None:
    tokens, offsets, _ = corpus
    n_docs = len(offsets) - 1
    by_docs = shard_plan(offsets, docs_per_shard=per_docs)
    assert by_docs[0] == 0 and by_docs[-1] == n_docs
    assert np.all(np.diff(by_docs)[:-1] == per_docs) and 0 <= by_docs[-1] - by_docs[-2] <= per_docs
    by_tokens = shard_plan(offsets, tokens_per_shard=per_tokens)
    assert by_tokens[0] == 0 and by_tokens[-1] == n_docs and np.all(np.diff(by_tokens) >= 0)
    sizes = np.diff(offsets[by_tokens])
    lone = np.diff(by_tokens) == 1  # a document longer than the budget stands alone
    assert np.all((sizes <= per_tokens) | lone)
    # Greedy: the next shard's first document would not have fit in the previous shard.
    for k in range(len(by_tokens) - 2):
        assert offsets[by_tokens[k + 1] + 1] - offsets[by_tokens[k]] > per_tokens
    index = build_sharded(tokens, offsets, tokens_per_shard=per_tokens, backend=BACKEND)
    assert index.shard_doc_starts.tolist() == by_tokens.tolist()
    assert_same_queries(index, CorpusIndex.build(tokens, offsets, backend=BACKEND), [[], [1]])


def test_streamed_build_writes_shards_then_maps_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 40, 5000).astype(np.uint16)
    offsets = np.unique(np.concatenate([[0, 5000], rng.integers(0, 5000, 60)]))
    index = build_sharded(
        tokens, offsets, docs_per_shard=9, backend=BACKEND, tokenizer_fingerprint="fp",
        out=tmp_path / "ix",
    )  # fmt: skip
    manifest = json.loads((tmp_path / "ix" / "shards.json").read_text())
    assert [s["doc_start"] for s in manifest["shards"]] == list(range(0, len(offsets) - 1, 9))
    assert index.n_shards == len(manifest["shards"]) and index.tokenizer_fingerprint == "fp"
    full = CorpusIndex.build(tokens, offsets, backend=BACKEND)
    patterns = [tokens[i : i + m].tolist() for m in (1, 2, 3) for i in range(0, 5000, 211)]
    assert_same_queries(index, full, patterns)


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    tokens = np.arange(600, dtype=np.uint16) % 37
    build_sharded(
        tokens, [0, 100, 250, 400, 600], docs_per_shard=2, tokenizer_fingerprint="fp",
        out=tmp_path / "ix",
    )  # fmt: skip
    return tmp_path / "ix"


def test_load_refuses_what_does_not_fit(saved: Path) -> None:
    assert isinstance(load_index(saved, "fp"), ShardedIndex)
    with pytest.raises(IndexLoadError, match="tokenizer"):
        ShardedIndex.load(saved, expected_tokenizer_fingerprint="other")
    manifest_file = saved / "shards.json"
    manifest = json.loads(manifest_file.read_text())
    broken = json.loads(json.dumps(manifest))
    broken["shards"][1]["token_start"] += 1
    manifest_file.write_text(json.dumps(broken))
    with pytest.raises(IndexLoadError, match="does not start where"):
        ShardedIndex.load(saved)
    broken = json.loads(json.dumps(manifest))
    broken["shards"][0]["folder"] = "../elsewhere"
    manifest_file.write_text(json.dumps(broken))
    with pytest.raises(IndexLoadError, match="plain name"):
        ShardedIndex.load(saved)
    broken = json.loads(json.dumps(manifest))
    broken["shards"][0]["n_docs"], broken["shards"][1]["n_docs"] = 1, 3
    broken["shards"][1]["doc_start"] = 1
    manifest_file.write_text(json.dumps(broken))
    with pytest.raises(IndexLoadError, match="shard-00000"):
        ShardedIndex.load(saved)
    manifest_file.write_text(json.dumps(manifest))
    (saved / "shard-00001" / "meta.json").unlink()
    with pytest.raises(IndexLoadError, match="shard-00001"):
        ShardedIndex.load(saved)
    manifest_file.unlink()
    with pytest.raises(IndexLoadError, match=r"meta\.json"):
        load_index(saved)  # no shards.json: read as one plain index, which is not there


def test_bad_builds_are_rejected() -> None:
    tokens, offsets = np.arange(10, dtype=np.uint16), [0, 4, 10]
    with pytest.raises(ValueError, match="exactly one"):
        build_sharded(tokens, offsets)
    with pytest.raises(ValueError, match="exactly one"):
        build_sharded(tokens, offsets, docs_per_shard=1, tokens_per_shard=5)
    with pytest.raises(ValueError, match="positive"):
        build_sharded(tokens, offsets, tokens_per_shard=0)
    with pytest.raises(ValueError, match="cuts"):
        build_shards(tokens, offsets, [0, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        build_shards(tokens, offsets, [0, 2, 1, 2])
    a = CorpusIndex.build(tokens[:4], [0, 4], tokenizer_fingerprint="a")
    with pytest.raises(ValueError, match="tokenizers"):
        ShardedIndex([a, CorpusIndex.build(tokens[4:], [0, 6], tokenizer_fingerprint="b")])
    with pytest.raises(ValueError, match="restricted"):
        ShardedIndex([CorpusIndex.build(tokens, offsets).restrict([0])])
    empty = build_sharded(np.zeros(0, np.uint16), [0], docs_per_shard=3)
    assert empty.n_shards == 1 and empty.count([]) == 0 and empty.next_tokens([])[0].size == 0


# ------------------------------------------------------------------ decoding


@pytest.fixture(scope="module")
def settings_by_shards(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[dict[int, Setting]]:
    with one_torch_thread():
        base = Setting.of(tiny_model_and_tokenizer)
        tokens, offsets = corpus_tokens(base.tokenizer, base.corpus)
        out = {0: base}
        for k in SHARD_COUNTS[1:]:
            per = -(-(len(offsets) - 1) // k)
            out[k] = dataclasses.replace(base, index=build_sharded(tokens, offsets, per))
            assert out[k].index.n_shards == k
        yield out


def decoded(
    setting: Setting, monkeypatch: pytest.MonkeyPatch, questions: int, **overrides: Any
) -> tuple[list[Any], list[Any]]:
    """Every step's rule (allowed ids, eq. 12 bonus, banned ids) and every prediction
    without its timings."""
    from retrollm.decoding.scores import StepScores

    rules: list[Any] = []
    pick = StepScores.pick

    def recording(scores: StepScores, requests: Any) -> list[int]:
        for _, allowed in requests:
            as_list = [None if a is None else a.tolist() for a in (allowed.ids, allowed.bonus)]
            rules.append((*as_list, allowed.banned.tolist()))
        return pick(scores, requests)

    with monkeypatch.context() as patch:  # undone on return, so calls never nest
        patch.setattr(StepScores, "pick", recording)
        decoder = setting.decoder(**overrides)
        hyps = decoder.hypotheses(fixture_questions()[:questions])
        predictions = [decoder.prediction(h).model_dump(exclude={"timings"}) for h in hyps]
    return rules, predictions


# The unconstrained strategy only reads the index to place a finished evidence, and
# writes to the full budget: two questions are enough for it.
@pytest.mark.parametrize(
    ("strategy", "questions"),
    [("retrollm", 6), ("retrollm-hard-windows", 6), ("naive-constrained", 6), ("unconstrained", 2)],
)
def test_decoder_steps_and_predictions_are_identical_on_shards(
    settings_by_shards: dict[int, Setting],
    monkeypatch: pytest.MonkeyPatch,
    strategy: str,
    questions: int,
) -> None:
    options = {"strategy": strategy, "min_evidences": 2}
    rules, predictions = decoded(settings_by_shards[0], monkeypatch, questions, **options)
    assert any(p["evidences"] for p in predictions) and any(ids for ids, _, _ in rules)
    for k in SHARD_COUNTS[1:]:
        rules_k, predictions_k = decoded(settings_by_shards[k], monkeypatch, questions, **options)
        assert rules_k == rules, k
        for ours, theirs in zip(predictions_k, predictions, strict=True):
            differing = sorted(key for key in ours if ours[key] != theirs.get(key))
            assert not differing, (k, differing, [(ours[d], theirs[d]) for d in differing])
