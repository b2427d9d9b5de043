"""The baselines RetroLLM is measured against: direct generation and naive RAG.

Same backbone, corpus and questions as RetroLLM (docs/design.md §7); prompts are
FlashRAG's defaults, the toolkit behind the paper's baseline rows. Retrieved passages are
recorded as `evidences` so that R@1/R@5 are computed by the same code for every method.
Generation is greedy and batched with left padding and the KV cache (`generate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from retrollm.answers import extract_answer
from retrollm.models import is_chat_model
from schemas.prediction import EvidenceTrace, Prediction
from schemas.records import CorpusRecord, QARecord

DIRECT_INSTRUCTION = (
    "Answer the question based on your own knowledge. "
    "Only give me the answer and do not output any other words."
)
RAG_INSTRUCTION = (
    "Answer the question based on the given document. "
    "Only give me the answer and do not output any other words.\n"
    "The following are given documents.\n\n{reference}"
)

# A search function: question -> (document rows, scores), best first.
SearchFn = Callable[[str, int], tuple[Sequence[int], Sequence[float]]]


class BaselineConfig(BaseModel):
    """Knobs shared by the direct and RAG baselines (params.yaml `evaluate.baselines`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(5, ge=1, description="Passages in the RAG prompt (naive RAG: 5).")
    max_passage_tokens: int | None = Field(
        None,
        ge=8,
        description="Cut each passage body to this many tokens (None: whole document). "
        "wiki18_100w passages are ~130 tokens; lead summaries vary, a few run long.",
    )
    max_new_tokens: int = Field(32, ge=1, description="Answer tokens generated at most.")
    batch_size: int = Field(8, ge=1, description="Questions generated together.")


def _encode_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def build_prompt(
    tokenizer: PreTrainedTokenizerBase, question: str, reference: str | None
) -> list[int]:
    """Prompt ids: instruction (+ passages) as system turn, `Question: q` as user turn.

    Text typed by users or taken from the corpus is encoded as plain text, so it can never
    close a turn or open a RetroLLM block.
    """
    system = (
        DIRECT_INSTRUCTION if reference is None else RAG_INSTRUCTION.format(reference=reference)
    )
    if is_chat_model(tokenizer):
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Question: {question}"},
        ]
        out: Any = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, sanitize_control_tokens=True
        )
        ids = out["input_ids"] if hasattr(out, "keys") else out
        return [int(i) for i in ids]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + _encode_text(tokenizer, f"{system}\n\nQuestion: {question}\nAnswer:")


class PassageFormatter:
    """Turns retrieved documents into FlashRAG's reference block and evidence traces."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        corpus: Sequence[CorpusRecord],
        doc_offsets: np.ndarray,
        max_passage_tokens: int | None,
    ) -> None:
        if len(doc_offsets) != len(corpus) + 1:
            raise ValueError(
                f"doc_offsets has {len(doc_offsets)} entries for {len(corpus)} documents "
                "(expected n_docs + 1): tokens and corpus come from different runs"
            )
        self.tokenizer = tokenizer
        self.corpus = corpus
        self.doc_offsets = doc_offsets
        self.max_passage_tokens = max_passage_tokens

    def _body(self, record: CorpusRecord) -> tuple[str, bool]:
        title, _, body = record.contents.partition("\n")
        body = body.strip() if title.strip() == record.title.strip() else record.contents
        if self.max_passage_tokens is None:
            return body, False
        ids = _encode_text(self.tokenizer, body)
        if len(ids) <= self.max_passage_tokens:
            return body, False
        return self.tokenizer.decode(ids[: self.max_passage_tokens]).strip(), True

    def format(self, rows: Sequence[int]) -> tuple[str, list[EvidenceTrace], list[str]]:
        """Reference text ('Doc i(Title: t) text' lines), evidences, and notes."""
        lines, evidences, notes = [], [], []
        for rank, row in enumerate(rows, start=1):
            record = self.corpus[row]
            body, cut = self._body(record)
            lines.append(f"Doc {rank}(Title: {record.title}) {body}\n")
            if cut:
                notes.append(
                    f"passage {rank} ({record.id}) cut to {self.max_passage_tokens} tokens"
                )
            evidences.append(
                EvidenceTrace(
                    doc_index=int(row),
                    doc_id=record.id,
                    title=record.title,
                    start=int(self.doc_offsets[row]),
                    end=int(self.doc_offsets[row + 1]),
                    text=f"{record.title}\n{body}",
                )
            )
        return "".join(lines), evidences, notes


@torch.inference_mode()
def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
) -> list[tuple[list[int], bool]]:
    """Greedy continuations of left-padded prompts: (new ids without padding, hit EOS)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
    config = model.generation_config
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    device = next(model.parameters()).device
    output = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=pad,
        eos_token_id=list(eos_ids),
        use_cache=True,
    )
    results = []
    for row in output[:, width:].tolist():
        cut = next((i for i, t in enumerate(row) if t in eos_ids), None)
        results.append((row if cut is None else row[: cut + 1], cut is not None))
    return results


def run_baseline(
    method: str,
    kind: Literal["direct", "rag"],
    questions: Sequence[QARecord],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: BaselineConfig,
    search: SearchFn | None = None,
    passages: PassageFormatter | None = None,
) -> list[Prediction]:
    """Answer one batch of questions; RAG needs `search` and `passages`.

    Latency per question is its own retrieval time plus an equal share of the batch's
    generation time: batching amortizes the model, and that is what a user waits for.
    """
    if kind == "rag" and (search is None or passages is None):
        raise ValueError("the rag baseline needs a search function and a passage formatter")
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 0) - config.max_new_tokens
    prompts, evidences, notes, retrieval = [], [], [], []
    for question in questions:
        start = time.perf_counter()
        if kind == "rag":
            rows, _ = search(question.question, config.top_k)  # type: ignore[misc]
            reference, traces, passage_notes = passages.format(list(rows))  # type: ignore[union-attr]
        else:
            reference, traces, passage_notes = None, [], []
        prompts.append(build_prompt(tokenizer, question.question, reference))
        evidences.append(traces)
        notes.append(passage_notes)
        retrieval.append(time.perf_counter() - start)
    fits = [limit <= 0 or len(p) <= limit for p in prompts]
    start = time.perf_counter()
    runnable = [p for p, ok in zip(prompts, fits, strict=True) if ok]
    generated = (
        iter(generate_batch(model, tokenizer, runnable, config.max_new_tokens))
        if runnable
        else iter(())
    )
    share = (time.perf_counter() - start) / max(1, len(runnable))
    predictions = []
    for i, question in enumerate(questions):
        ids, finished = next(generated) if fits[i] else ([], False)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        answer = extract_answer(text)
        status = ("ok" if answer else "empty_answer") if finished else "max_new_tokens"
        if not fits[i]:
            status = "question_too_long"
            notes[i].append(f"prompt of {len(prompts[i])} tokens exceeds the context ({limit})")
        generation = share if fits[i] else 0.0
        predictions.append(
            Prediction(
                id=question.id,
                question=question.question,
                golden_answers=question.golden_answers,
                method=method,
                answer=answer,
                output_text=tokenizer.decode(ids, skip_special_tokens=False),
                evidences=evidences[i],
                tokens_in=len(prompts[i]),
                tokens_out=len(ids),
                forward_passes=len(ids),
                timings={
                    "retrieval": retrieval[i],
                    "generation": generation,
                    "total": retrieval[i] + generation,
                },
                well_formed=finished and bool(answer),
                status=status,
                notes=notes[i],
            )
        )
    return predictions
