"""Turn a decoded hypothesis into a Prediction record with its full trace.

The record is built from what the decoder recorded while it ran (clue token sequences,
evidence corpus offsets, per-phase timings), not by re-parsing the output text, so a
trace can never disagree with what actually constrained the decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

from retrollm.answers import extract_answer
from retrollm.decoding.state import EvidenceSpan, Hypothesis, Phase
from retrollm.models import SpecialTokenIds
from schemas.prediction import EvidenceTrace, Prediction
from schemas.records import CorpusRecord


def well_formed(
    generated: Sequence[int], special: SpecialTokenIds, answer_prefix: Sequence[int]
) -> bool:
    """Does the output follow `<|clue|> c (<|sep|> c)* <|/clue|> <|evidence|> e (<|sep|> e)*
    <|/evidence|> PREFIX answer` with no RetroLLM token inside the answer?"""
    s = special
    markers = [(i, t) for i, t in enumerate(generated) if t in s.as_dict().values()]
    kinds = [t for _, t in markers]
    if len(kinds) < 4 or kinds[0] != s.clue or generated[0] != s.clue:
        return False
    try:
        clue_end = kinds.index(s.clue_end)
    except ValueError:
        return False
    if any(t != s.sep for t in kinds[1:clue_end]):
        return False
    rest = kinds[clue_end + 1 :]
    if len(rest) < 2 or rest[0] != s.evidence or rest[-1] != s.evidence_end:
        return False
    if any(t != s.sep for t in rest[1:-1]):
        return False
    end_at = markers[-1][0] + 1
    return list(generated[end_at : end_at + len(answer_prefix)]) == list(answer_prefix)


def build_prediction(
    hyp: Hypothesis,
    tokenizer,
    special: SpecialTokenIds,
    answer_prefix: Sequence[int],
    corpus: Sequence[CorpusRecord] | None,
    method: str,
    stop_ids: Sequence[int] = (),
) -> Prediction:
    """The Prediction of one finished hypothesis."""
    query = hyp.query
    ctx = hyp.context
    answer_ids: list[int] = []
    if hyp.answer_start is not None:
        answer_ids = [t for t in hyp.generated[hyp.answer_start :] if t not in stop_ids]
    notes = list(query.notes)
    status = query.status
    if hyp.phase is not Phase.DONE:
        status = status if status != "ok" else "unfinished"
        notes.append(f"decoding stopped in phase {hyp.phase.label}")
    return Prediction(
        id=query.id,
        question=query.question,
        golden_answers=list(query.golden_answers),
        method=method,
        answer=extract_answer(tokenizer.decode(answer_ids, skip_special_tokens=True)),
        output_text=tokenizer.decode(hyp.generated, skip_special_tokens=False),
        clues=[tokenizer.decode(c) for c in hyp.clues],
        expansion_terms=list(ctx.expansion_terms) if ctx else [],
        documents=list(ctx.documents) if ctx else [],
        windows=list(ctx.windows) if ctx else [],
        located_windows=list(ctx.located) if ctx else [],
        evidences=[_evidence(span, tokenizer, corpus) for span in hyp.evidences],
        tokens_in=len(query.prompt_ids),
        tokens_out=len(hyp.generated),
        forward_passes=hyp.forward_passes,
        timings={k: round(v, 6) for k, v in hyp.timings.items()},
        well_formed=well_formed(hyp.generated, special, answer_prefix),
        status=status,
        notes=notes,
    )


def _evidence(span: EvidenceSpan, tokenizer, corpus: Sequence[CorpusRecord] | None):
    text = tokenizer.decode(span.tokens, skip_special_tokens=True)
    if span.doc_index is None or span.start is None:
        return EvidenceTrace(
            doc_index=-1, doc_id="", title="", start=-1, end=-1, text=text, verbatim=False
        )
    record = corpus[span.doc_index] if corpus is not None else None
    return EvidenceTrace(
        doc_index=span.doc_index,
        doc_id=record.id if record else str(span.doc_index),
        title=record.title if record else "",
        start=span.start,
        end=span.start + len(span.tokens),
        text=text,
        window=span.window,
        verbatim=span.verbatim,
    )
