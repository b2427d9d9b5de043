"""Training targets of the rag-lora baseline: the evaluation's RAG prompt, the short answer.

The baseline RetroLLM is measured against should be as strong as the same budget allows:
the same backbone, LoRA recipe and training questions as RetroLLM's adapter, on the very
prompt the RAG baseline is evaluated with (top-k passages of one retriever, FlashRAG's
instruction), with the gold answer RetroLLM's target writes as the only supervised text.
Which retriever feeds the prompt is decided on the training side (`choose_retriever`), so
the test questions never influence it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from retrollm.baselines import PassageFormatter, SearchFn, build_prompt
from retrollm.metrics import has_answer
from retrollm.training.masks import ANSWER, PROMPT, weights_from_roles
from schemas.training import TrainExample

# The answer is the only supervised text, so a uniform weight only rescales the loss.
ANSWER_WEIGHT = 1.0


@dataclass(frozen=True)
class RetrieverChoice:
    """Recall@k of each candidate retriever on the training questions, and the winner."""

    recall: dict[str, float]
    chosen: str


def recall_at_k(
    search: SearchFn, texts: Sequence[str], questions: Sequence[TrainExample], k: int
) -> float:
    """Share of questions (percent) with a gold answer in one of the top-k documents."""
    if not questions:
        raise ValueError("recall_at_k needs at least one question")
    hits = 0
    for question in questions:
        rows, _ = search(question.question, k)
        hits += any(has_answer(texts[row], question.golden_answers) for row in rows)
    return 100.0 * hits / len(questions)


def choose_retriever(
    searches: dict[str, Callable[[], SearchFn]],
    texts: Sequence[str],
    questions: Sequence[TrainExample],
    k: int,
) -> RetrieverChoice:
    """The retriever with the highest recall@k on the training questions (ties: the first
    named), each built only when measured."""
    recall = {name: recall_at_k(build(), texts, questions, k) for name, build in searches.items()}
    chosen = max(recall, key=lambda name: (recall[name], -list(recall).index(name)))
    return RetrieverChoice(recall=recall, chosen=chosen)


def rag_example(
    tokenizer: PreTrainedTokenizerBase,
    source: TrainExample,
    rows: Sequence[int],
    passages: PassageFormatter,
    eos_id: int,
) -> TrainExample:
    """One target: the RAG prompt over `rows`, then `source`'s answer and end of turn."""
    reference, _, _ = passages.format(list(rows))
    prompt = build_prompt(tokenizer, source.question, reference)
    answer = source.answer.strip()
    target = [
        *tokenizer(answer, add_special_tokens=False, split_special_tokens=True)["input_ids"],
        eos_id,
    ]
    roles = PROMPT * len(prompt) + ANSWER * len(target)
    return TrainExample(
        id=source.id,
        dataset=source.dataset,
        question=source.question,
        golden_answers=source.golden_answers,
        answer=answer,
        clues=[],
        evidences=[],
        input_ids=[*prompt, *(int(t) for t in target)],
        roles=roles,
        weights=weights_from_roles(roles, ANSWER_WEIGHT),
        prompt_length=len(prompt),
    )
