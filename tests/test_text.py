"""normalize_answer must equal FlashRAG's; AnswerMatcher must equal a brute-force scan."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from retrollm.text import AnswerMatcher, normalize_answer


def flashrag_normalize_answer(s: str) -> str:
    """FlashRAG's normalize_answer, verbatim, as the reference."""

    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text: str) -> str:
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def test_normalize_answer_examples() -> None:
    assert normalize_answer("The Eiffel  Tower!") == "eiffel tower"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("Theatre, Anthem") == "theatre anthem"
    assert normalize_answer("Don't\tstop") == "dont stop"
    assert normalize_answer("the.") == ""
    assert normalize_answer("Île-de-France") == "îledefrance"


_TEXT = st.text(
    alphabet=st.sampled_from(list("aAnNtThHeE xyz.,'-!\t\nÉé1")) | st.characters(), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_normalize_answer_equals_flashrag(text: str) -> None:
    assert normalize_answer(text) == flashrag_normalize_answer(text)


DOCS = [
    "Paris\nParis is the capital of France.",
    "Albert Einstein\nAlbert Einstein developed the theory of relativity.",
    "New\nThe word ends here: New",
    "York\nYork is a city in England.",
]


def test_matcher_whole_words_only() -> None:
    matcher = AnswerMatcher(DOCS)
    assert len(matcher) == 4
    assert matcher.occurs("Paris")
    assert matcher.occurs("paris!")
    assert not matcher.occurs("Par")
    assert not matcher.occurs("aris")
    assert matcher.occurs("the theory of Relativity")
    assert matcher.occurs("Einstein developed")
    assert not matcher.occurs("relativity Einstein")


def test_matcher_never_spans_two_documents() -> None:
    assert not AnswerMatcher(DOCS).occurs("New York")


def test_matcher_empty_answer_matches_nothing() -> None:
    matcher = AnswerMatcher(DOCS)
    assert not matcher.occurs("The")
    assert not matcher.occurs("...")
    assert not matcher.any_occurs(["", "a", "Laika"])
    assert matcher.any_occurs(["Laika", "France"])


_WORDS = st.sampled_from(["the", "a", "red", "fox", "Red", "fox.", "jumps", "over", "dog", "x"])


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(st.lists(_WORDS, max_size=12).map(" ".join), min_size=1, max_size=6),
    answer=st.lists(_WORDS, min_size=1, max_size=3).map(" ".join),
)
def test_matcher_equals_brute_force(docs: list[str], answer: str) -> None:
    needle = normalize_answer(answer)
    expected = bool(needle) and any(f" {needle} " in f" {normalize_answer(d)} " for d in docs)
    assert AnswerMatcher(docs).occurs(answer) == expected
