"""Training targets on the fixture corpus: built, relevant, and reachable under the
decoder's constraints (checked token by token against the index, as the decoder would)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.contexts import RetrievalContexts
from retrollm.decoding.state import Hypothesis, Query
from retrollm.decoding.strategies import resolve_strategy
from retrollm.index import CorpusIndex
from retrollm.models import SpecialTokenIds, load_tokenizer, prompt_ids
from retrollm.training.clues import candidate_spans, name_spans
from retrollm.training.targets import (
    Limits,
    Special,
    UnreachableTargetError,
    assert_reachable,
    parse_target,
)
from retrollm.training.trainset import TrainsetBuilder, TrainsetConfig
from tests.decoding_support import (
    OverlapScorer,
    OverlapSparse,
    Setting,
    build_index,
    fixture_corpus,
)

FIXTURES = Path(__file__).parent / "fixtures"
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"what", "which", "who", "the", "does", "into", "is", "of", "on", "in", "name", "first"}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2]


@pytest.fixture(scope="module")
def env(tiny_model_dir: Path) -> dict[str, Any]:
    tokenizer = load_tokenizer(tiny_model_dir)
    corpus = fixture_corpus()
    index = build_index(tokenizer, corpus)
    special = Special(
        **SpecialTokenIds.from_tokenizer(tokenizer).as_dict(), eos=int(tokenizer.eos_token_id)
    )
    return {"tokenizer": tokenizer, "index": index, "special": special, "corpus": corpus}


def _questions(split: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / f"qa_{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _builder(env: dict[str, Any], decode: DecodeConfig, **config: Any) -> TrainsetBuilder:
    tokenizer = env["tokenizer"]
    contexts = RetrievalContexts(
        env["index"], tokenizer, OverlapScorer(), decode, resolve_strategy(decode), env["corpus"]
    )
    return TrainsetBuilder(
        TrainsetConfig(**config), decode, contexts, env["special"],
        lambda q: prompt_ids(tokenizer, q),
    )  # fmt: skip


def _build(
    env: dict[str, Any], question: dict[str, Any], decode: DecodeConfig | None = None,
    **config: Any,
) -> tuple[Any, str]:  # fmt: skip
    decode = decode or DecodeConfig()
    builder = _builder(env, decode, **config)
    query = Query(question["id"], question["question"], question["golden_answers"], [])
    OverlapSparse(env["corpus"]).fill([query], decode.k_aux, decode.sparse_top_docs)
    return builder.build("tiny", builder.retrieve([query])[0])


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


DECODE = DecodeConfig(min_evidences=3, max_evidences=3)


def test_every_fixture_target_is_reachable(env: dict[str, Any]) -> None:
    kept = 0
    for question in _questions("train"):
        example, outcome = _build(env, question, DECODE)
        assert outcome in {"kept", "no_relevant", "no_clues", "no_windows"}
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
        spans = [(e.start, e.end) for e in example.evidences]
        assert all(a[1] <= b[0] or b[1] <= a[0] for i, a in enumerate(spans) for b in spans[:i])
        assert any(e.relevant for e in example.evidences)  # at whatever rank
        assert len(example.evidences) <= 3
        assert example.roles.count("a") >= 2  # answer text and end-of-sequence
    assert kept >= 4


def test_targets_replay_through_the_decoders_rules(
    env: dict[str, Any], tiny_model_and_tokenizer: tuple[Any, Any]
) -> None:
    """Feed each target to the decoder's own step as if the model preferred it: every
    target token must be what the decoder chooses under its rules (allowed, and steered
    there by the forced tokens and the window anchors), so training teaches only outputs
    the decoder can produce."""
    model, tokenizer = tiny_model_and_tokenizer
    setting = Setting(model, tokenizer, env["corpus"], env["index"])
    replayed = 0
    for question in _questions("train"):
        example, _ = _build(env, question, DECODE)
        if example is None:
            continue
        decoder = setting.decoder(**DECODE.model_dump(exclude={"batch_size"})).decoder
        query = Query(question["id"], question["question"], question["golden_answers"],
                      example.input_ids[: example.prompt_length])  # fmt: skip
        OverlapSparse(env["corpus"]).fill([query], DECODE.k_aux, DECODE.sparse_top_docs)
        decoder.hyps = [Hypothesis(query)]
        decoder.hyps[0].force([env["special"].clue])
        vocab = model.get_output_embeddings().weight.shape[0]
        for position, token in enumerate(example.input_ids[example.prompt_length :]):
            logits = np.zeros((1, vocab), dtype=np.float32)
            logits[0, token] = 1e6
            chosen = decoder.step([0], logits)[0]
            assert chosen == token, f"{question['id']}: target token {position} refused"
        hyp = decoder.hyps[0]
        assert hyp.done and len(hyp.evidences) == len(example.evidences)
        assert [e.start for e in hyp.evidences] == [e.start for e in example.evidences]
        replayed += 1
    assert replayed >= 4


def test_tampered_target_is_refused(env: dict[str, Any]) -> None:
    example = next(e for q in _questions("train") if (e := _build(env, q, DECODE)[0]))
    docs = [e.doc_index for e in example.evidences]
    ids = list(example.input_ids)
    limits = Limits(max_evidences=3)
    assert_reachable(ids, example.prompt_length, docs, env["index"], env["special"], limits)
    start = example.roles.index("m")  # a masked evidence token: still checked
    bad = [*ids[:start], env["special"].eos, *ids[start + 1 :]]
    with pytest.raises(UnreachableTargetError):
        assert_reachable(bad, example.prompt_length, docs, env["index"], env["special"], limits)
    other_doc = [(docs[0] + 1) % env["index"].n_docs, *docs[1:]]
    with pytest.raises(UnreachableTargetError):
        assert_reachable(ids, example.prompt_length, other_doc, env["index"], env["special"],
                         limits)  # fmt: skip


def test_question_without_answer_in_corpus(env: dict[str, Any]) -> None:
    laika = next(q for q in _questions("test") if q["golden_answers"] == ["Laika"])
    assert _build(env, laika, DECODE) == (None, "no_relevant")
    example, outcome = _build(env, laika, DECODE, no_relevant="keep")
    assert outcome == "kept" and example is not None
    assert example.evidences and example.answer == "Laika"
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


def test_length_rules_are_enforced(env: dict[str, Any]) -> None:
    example = next(e for q in _questions("train") if (e := _build(env, q, DECODE)[0]))
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
