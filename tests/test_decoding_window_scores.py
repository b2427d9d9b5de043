"""Window scoring with the vector cache keeps what the uncached path kept: the same scores
(to float rounding), the same kept windows and the same generated tokens, while the scorer
embeds each window text once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrollm.decoding.pipeline import RetroLLM
from retrollm.decoding.window_scores import WindowScores
from retrollm.retrieval.scorer import BiEncoderScorer
from tests.decoding_support import OverlapSparse, Setting, fixture_questions, one_torch_thread
from tests.retrieval_tiny import tiny_biencoder


class Counting:
    """A bi-encoder that counts the texts it embeds."""

    def __init__(self, inner: BiEncoderScorer) -> None:
        self.inner, self.texts = inner, 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.embed(texts)

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        return self.inner.score(question, texts)


@pytest.fixture(scope="module")
def setting(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[Setting]:
    with one_torch_thread():
        yield Setting.of(tiny_model_and_tokenizer)


@pytest.fixture(scope="module")
def biencoder(fixture_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_biencoder(tmp_path_factory.mktemp("bi") / "bi", fixture_texts)


def test_cached_scores_equal_uncached_and_embed_each_text_once(biencoder: Path) -> None:
    texts = ["The Eiffel Tower is in Paris.", "Tokyo is big.", "The Moon orbits the Earth."]
    jobs = [("Where is the tower?", texts), ("What orbits?", texts[1:] + texts[:1]), ("x", [])]
    plain = Counting(BiEncoderScorer(biencoder))
    cached = Counting(BiEncoderScorer(biencoder))
    uncached_scores = WindowScores(plain, cache_size=0)(jobs)
    cache = WindowScores(cached, cache_size=100)
    first = cache(jobs)
    for a, b in zip(uncached_scores, first, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert plain.texts == 2 + 6 and cached.texts == 2 + 3  # questions + window texts
    again = cache([("Where is the tower?", texts[:2])])  # another batch: all cached
    np.testing.assert_allclose(again[0], first[0][:2], atol=1e-6)
    assert cached.texts == 2 + 3 + 1 and cache.embedded == 3  # only the question again


def test_cache_is_bounded_and_drops_the_least_recently_used(biencoder: Path) -> None:
    cache = WindowScores(BiEncoderScorer(biencoder), cache_size=2)
    cache([("q", ["a", "b"])])
    cache([("q", ["a", "c"])])  # "b" is the oldest now
    assert list(cache._vectors) == ["a", "c"]


def test_decoding_with_the_cache_keeps_the_same_windows_and_tokens(
    setting: Setting, biencoder: Path
) -> None:
    questions = fixture_questions()
    runs = {}
    for size in (0, 1000):
        scorer = BiEncoderScorer(biencoder)
        config = setting.decoder(window_cache=size).config
        decoder = RetroLLM(
            setting.model, setting.tokenizer, setting.index, setting.corpus, config,
            OverlapSparse(setting.corpus), scorer,
        )  # fmt: skip
        hyps = decoder.hypotheses(questions + questions[:3])  # repeats hit the cache
        kept = [[(w.doc_index, w.start, w.end) for w in h.context.windows] for h in hyps]
        runs[size] = (kept, [h.generated for h in hyps], decoder.decoder.contexts.scores)
    (kept_a, ids_a, plain), (kept_b, ids_b, cached) = runs[0], runs[1000]
    assert any(kept_a) and kept_a == kept_b and ids_a == ids_b
    assert cached.requested == plain.requested == plain.embedded
    assert cached.embedded < plain.embedded
