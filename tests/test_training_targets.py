"""Training targets on the fixture corpus: built, relevant, and reachable under the
decoder's constraints (checked token by token against the index, as the decoder would)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrollm.index import CorpusIndex
from retrollm.models import SpecialTokenIds, load_tokenizer, prompt_ids
from retrollm.training.clues import candidate_spans, name_spans
from retrollm.training.evidence import matching_answer, sentence_windows
from retrollm.training.targets import (
    Limits,
    Special,
    UnreachableTargetError,
    assert_reachable,
    parse_target,
)
from retrollm.training.trainset import TrainsetBuilder, TrainsetConfig

FIXTURES = Path(__file__).parent / "fixtures"
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"what", "which", "who", "the", "does", "into", "is", "of", "on", "in", "name", "first"}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2]


class OverlapScorer:
    """Relevance stand-in: shared words (deterministic, unlike a random bi-encoder)."""

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        wanted = set(_words(question))
        return np.array([len(wanted & set(_words(t))) for t in texts], dtype=np.float32)


@pytest.fixture(scope="module")
def env(tiny_model_dir: Path) -> dict[str, Any]:
    tokenizer = load_tokenizer(tiny_model_dir)
    lines = (FIXTURES / "corpus.jsonl").read_text().splitlines()
    texts = [json.loads(line)["contents"] for line in lines if line.strip()]
    ids = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(i) for i in ids], out=offsets[1:])
    index = CorpusIndex.build(np.concatenate([np.asarray(i) for i in ids]), offsets)
    special = Special(
        **SpecialTokenIds.from_tokenizer(tokenizer).as_dict(), eos=int(tokenizer.eos_token_id)
    )
    doc_words = [set(_words(t)) for t in texts]
    return {"tokenizer": tokenizer, "index": index, "special": special, "doc_words": doc_words}


def _questions(split: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / f"qa_{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _build(env: dict[str, Any], question: dict[str, Any], **config: Any) -> tuple[Any, str]:
    tokenizer = env["tokenizer"]
    builder = TrainsetBuilder(
        TrainsetConfig(**config), env["index"], tokenizer, env["special"], OverlapScorer(),
        lambda q: prompt_ids(tokenizer, q),
    )  # fmt: skip
    terms = _words(question["question"])
    overlap = np.array([len(set(terms) & d) for d in env["doc_words"]])
    docs = [int(i) for i in np.argsort(-overlap, kind="stable") if overlap[i] > 0]
    return builder.build(
        question["id"], "tiny", question["question"], question["golden_answers"], terms, docs
    )


def _decoder_allows(index: CorpusIndex, tokens: list[int]) -> bool:
    """Step through `tokens` as the constrained decoder does: each must be among the
    continuations the index offers for the prefix so far."""
    state = index.root()
    for token in tokens:
        allowed, _ = index.continuations(state)
        if token not in set(allowed.tolist()):
            return False
        state = index.extend(state, [token])[0]
    return True


def test_every_fixture_target_is_reachable(env: dict[str, Any]) -> None:
    kept = 0
    for question in _questions("train"):
        example, outcome = _build(env, question)
        assert outcome in {"kept", "no_relevant", "no_candidates"}
        if example is None:
            continue
        kept += 1
        parsed = parse_target(example.input_ids[example.prompt_length :], env["special"])
        assert parsed.clues and parsed.evidences
        for clue in parsed.clues:  # corpus-level constraint
            assert _decoder_allows(env["index"], clue)
        for tokens, evidence in zip(parsed.evidences, example.evidences, strict=True):
            document = env["index"].restrict([evidence.doc_index])  # document-level constraint
            assert _decoder_allows(document, tokens)
            assert env["index"].extract(evidence.start, evidence.end).tolist() == tokens
        assert example.evidences[-1].relevant
        assert not any(e.relevant for e in example.evidences[:-1])
        assert matching_answer(example.evidences[-1].text, example.golden_answers)
        assert example.roles.count("a") >= 2  # answer text and end-of-sequence
    assert kept >= 6


def test_tampered_target_is_refused(env: dict[str, Any]) -> None:
    example, _ = _build(env, _questions("train")[0])
    assert example is not None
    docs = [e.doc_index for e in example.evidences]
    ids = list(example.input_ids)
    assert_reachable(ids, example.prompt_length, docs, env["index"], env["special"])
    start = example.roles.index("m")  # a masked evidence token: still checked
    bad = [*ids[:start], env["special"].eos, *ids[start + 1 :]]
    with pytest.raises(UnreachableTargetError):
        assert_reachable(bad, example.prompt_length, docs, env["index"], env["special"])
    other_doc = [(docs[0] + 1) % env["index"].n_docs, *docs[1:]]
    with pytest.raises(UnreachableTargetError):
        assert_reachable(ids, example.prompt_length, other_doc, env["index"], env["special"])


def test_question_without_answer_in_corpus(env: dict[str, Any]) -> None:
    laika = next(q for q in _questions("test") if q["golden_answers"] == ["Laika"])
    assert _build(env, laika) == (None, "no_relevant")
    example, outcome = _build(env, laika, no_relevant="empty")
    assert outcome == "kept" and example is not None
    assert example.evidences == [] and example.answer == "Laika"
    assert "e" not in example.roles and "m" not in example.roles
    example, _ = _build(env, laika, no_relevant="all")
    assert example is not None and example.evidences
    assert not any(e.relevant for e in example.evidences)


def test_clue_spans_skip_stop_words() -> None:
    spans = [s for _, _, s in candidate_spans("Who painted the Mona Lisa?", 3)]
    assert "Mona Lisa" in spans and "painted" in spans
    assert not any(s.split()[0].lower() in {"who", "the"} for s in spans)
    assert "painted the Mona" in spans  # stop words inside a span are fine
    text = "Considered by Bank of America in 1968 as Apollo 11, Asia Minor and Europe."
    names = [s for _, _, s in name_spans(text, 3)]
    assert names == ["Bank of America", "Apollo 11", "Asia Minor", "Europe"]
    assert [s for _, _, s in name_spans("It was 1968. Michael Jeffrey Jordan is", 3)] == [
        "Michael Jeffrey Jordan"
    ]
    assert name_spans("The Statue of the United States of America", 3) == []  # too long


def test_windows_take_whole_sentences_up_to_the_decoder_minimum() -> None:
    sentences = [(0, 10), (11, 30), (31, 80), (81, 90)]
    assert sentence_windows(sentences, 95, 64, 128) == [(0, 80), (11, 80), (31, 95), (81, 95)]
    assert sentence_windows(sentences, 95, 64, 50) == [(0, 50), (11, 61), (31, 81), (81, 95)]
    assert sentence_windows(sentences, 95, 0, 128) == sentences  # plain sentences


def test_length_rules_are_enforced(env: dict[str, Any]) -> None:
    example, _ = _build(env, _questions("train")[0])
    assert example is not None
    args = (example.input_ids, example.prompt_length, [e.doc_index for e in example.evidences])
    with pytest.raises(UnreachableTargetError, match="clue 0"):
        assert_reachable(*args, env["index"], env["special"], Limits(clue_min_tokens=50))
    evidence = example.evidences[0]
    too_short = Limits(evidence_min_tokens=evidence.end - evidence.start + 1)
    if evidence.end == int(env["index"].doc_offsets[evidence.doc_index + 1]):
        assert_reachable(*args, env["index"], env["special"], too_short)  # ends its document
    else:
        with pytest.raises(UnreachableTargetError, match="does not end its document"):
            assert_reachable(*args, env["index"], env["special"], too_short)
    with pytest.raises(UnreachableTargetError, match="evidences >"):
        assert_reachable(*args, env["index"], env["special"], Limits(max_evidences=0))


_FORMS = {" elected": [1], " Elected": [2, 3], " Eiffel Tower": [4, 5], " eiffel tower": [6]}
_COUNTS = {(1,): 400, (2, 3): 3, (4, 5): 4, (6,): 0}


class _FakeTokenizer:
    def encode(self, form: str, add_special_tokens: bool = False) -> list[int]:
        return _FORMS.get(form, [9, 9, 9])

    def decode(self, ids: list[int]) -> str:
        return next(f for f, i in _FORMS.items() if i == list(ids))


class _FakeIndex:
    n_docs = 100

    def count(self, ids: list[int]) -> int:
        return _COUNTS.get(tuple(ids), 0)

    def locate(self, ids: list[int]) -> np.ndarray:
        return np.arange(self.count(ids))

    def doc_of(self, positions: np.ndarray) -> np.ndarray:
        return positions // 2  # two hits per document


def test_clue_is_the_dominant_corpus_form_or_nothing() -> None:
    from retrollm.training.clues import ClueFinder

    finder = ClueFinder(_FakeIndex(), _FakeTokenizer(), min_tokens=2, max_tokens=7)
    # " elected" (1 token, 400 hits) dominates: too short, and no rarer casing stands in.
    assert finder.score("elected", recase=True) is None
    clue = finder.score("eiffel tower", recase=True)
    assert clue is not None and clue.text == "Eiffel Tower" and clue.token_ids == (4, 5)
    assert clue.weight == pytest.approx(np.log(100 / 4) + np.log(100 / 2))  # eq. 5: CF 4, DF 2
