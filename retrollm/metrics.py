"""Answer and retrieval metrics exactly as FlashRAG (the paper's toolkit) computes them.

Every answer metric reads `Prediction.answer` only: a method that pastes the evidence into
its answer must not get credit for text it merely copied from the corpus. Retrieval
recall reads the evidences (RetroLLM's generated spans, or a RAG baseline's passages), so
R@k means the same thing for every method.

One deliberate difference from FlashRAG: a gold answer that normalizes to the empty
string (say "The") is ignored, because "" is a substring of every prediction and every
passage and would score a hit for anything.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from retrollm.text import normalize_answer
from schemas.prediction import Prediction

# FlashRAG's token F1 refuses partial credit between these and anything else.
_SPECIAL_F1 = ("yes", "no", "noanswer")


def _golds(golden_answers: Iterable[str]) -> list[str]:
    return [g for g in (normalize_answer(a) for a in golden_answers) if g]


def exact_match(prediction: str, golden_answers: Sequence[str]) -> float:
    """1.0 if the normalized prediction equals some normalized gold answer."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == gold for gold in _golds(golden_answers)))


def accuracy(prediction: str, golden_answers: Sequence[str]) -> float:
    """1.0 if some normalized gold answer is a substring of the normalized prediction
    (FlashRAG's `acc`: a plain character substring, not whole words)."""
    normalized = normalize_answer(prediction)
    return float(any(gold in normalized for gold in _golds(golden_answers)))


def token_f1(prediction: str, golden_answers: Sequence[str]) -> float:
    """Bag-of-tokens F1 on normalized text, the best over gold answers."""
    predicted = normalize_answer(prediction)
    predicted_tokens = predicted.split()
    best = 0.0
    for gold in _golds(golden_answers):
        if (predicted in _SPECIAL_F1 or gold in _SPECIAL_F1) and predicted != gold:
            continue
        gold_tokens = gold.split()
        same = sum((Counter(predicted_tokens) & Counter(gold_tokens)).values())
        if same == 0:
            continue
        precision = same / len(predicted_tokens)
        recall = same / len(gold_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def has_answer(text: str, golden_answers: Sequence[str]) -> bool:
    """Whether some normalized gold answer is a substring of the normalized text."""
    normalized = normalize_answer(text)
    return any(gold in normalized for gold in _golds(golden_answers))


def recall_at_k(evidence_texts: Sequence[str], golden_answers: Sequence[str], k: int) -> float:
    """1.0 if a gold answer occurs in one of the first k evidences (0.0 with none)."""
    return float(any(has_answer(text, golden_answers) for text in evidence_texts[:k]))


class QuestionScores(BaseModel):
    """Every per-question number the report aggregates."""

    em: float
    acc: float
    f1: float
    r1: float
    r5: float
    tokens_in: int
    tokens_out: int
    well_formed: bool
    status: str


def score(prediction: Prediction) -> QuestionScores:
    """Score one prediction: answer metrics on `answer`, recall on `evidences`."""
    golds = prediction.golden_answers
    texts = [evidence.text for evidence in prediction.evidences]
    return QuestionScores(
        em=exact_match(prediction.answer, golds),
        acc=accuracy(prediction.answer, golds),
        f1=token_f1(prediction.answer, golds),
        r1=recall_at_k(texts, golds, 1),
        r5=recall_at_k(texts, golds, 5),
        tokens_in=prediction.tokens_in,
        tokens_out=prediction.tokens_out,
        well_formed=prediction.well_formed,
        status=prediction.status,
    )


class Aggregate(BaseModel):
    """Means over a method's questions (metrics in percent, like the paper's tables)."""

    n: int
    acc: float
    em: float
    f1: float
    r1: float
    r5: float
    tokens: float = Field(description="Mean tokens in plus out per question (paper's Tok).")
    tokens_in: float
    tokens_out: float
    well_formed: float = Field(description="Percent of outputs in the expected format.")
    acc_ci95: float = Field(description="Half width of a normal 95% interval on acc, points.")
    status: dict[str, int] = Field(default_factory=dict, description="Count per status.")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def aggregate(scores: Sequence[QuestionScores]) -> Aggregate:
    """Means of per-question scores; with n in the hundreds, acc_ci95 says how far apart
    two methods must be before the difference means anything."""
    n = len(scores)
    acc = _mean([s.acc for s in scores])
    return Aggregate(
        n=n,
        acc=100 * acc,
        em=100 * _mean([s.em for s in scores]),
        f1=100 * _mean([s.f1 for s in scores]),
        r1=100 * _mean([s.r1 for s in scores]),
        r5=100 * _mean([s.r5 for s in scores]),
        tokens=_mean([s.tokens_in + s.tokens_out for s in scores]),
        tokens_in=_mean([s.tokens_in for s in scores]),
        tokens_out=_mean([s.tokens_out for s in scores]),
        well_formed=100 * _mean([float(s.well_formed) for s in scores]),
        acc_ci95=100 * 1.96 * math.sqrt(acc * (1 - acc) / n) if n else 0.0,
        status=dict(sorted(Counter(s.status for s in scores).items())),
    )


class Timing(BaseModel):
    """Wall time of one run over a method's questions. Kept apart from Aggregate: it is a
    fact of the machine and its load, not of params and inputs, so it goes to the run log
    beside an evaluation (retrollm/artifacts.py run_log_path), never into the artifact."""

    latency_ms: float = Field(description="Mean wall time per question, milliseconds.")
    questions_per_min: float


def timing(predictions: Sequence[Prediction]) -> Timing:
    """Mean latency of predictions that carry their timings (timings["total"], seconds)."""
    latency = _mean([p.timings.get("total", 0.0) for p in predictions])
    return Timing(latency_ms=1000 * latency, questions_per_min=60 / latency if latency > 0 else 0.0)
