"""Hand-made evaluation cells for the inspector tests: the fixture corpus plus a hostile
document (markup, quotes, RTL marks) and a 100 kB one, and predictions of RetroLLM and
the baselines whose outcomes exercise every filter of the page."""

from __future__ import annotations

from schemas.prediction import DocumentTrace, EvidenceTrace, Prediction, WindowTrace
from schemas.records import CorpusRecord
from tests.decoding_support import fixture_corpus

FULL, RAGS = "retrollm-lora", ["rag-bm25", "rag-dense"]
EIFFEL, NEWTON, SHAKESPEARE = 15, 17, 5
HOSTILE_TEXT = (
    '</script><script>document.title="pwned"</script><img src=x '
    "onerror=\"document.title='pwned'\"> <!-- \"double\" 'single' \u202eevil override "
    "\u2067isolate\u2069 \u05e9\u05dc\u05d5\u05dd The secret island is Zanzibar, it said."
)
NEEDLE = "The hidden marsupial in this long text is the Quokka of Rottnest."
LONG_BYTES = 100_000


def corpus() -> list[CorpusRecord]:
    """Fixture documents, then the hostile one (bypassing the record's text hygiene, as
    a corpus made elsewhere could) and a 100 kB one with the needle in its middle."""
    records = fixture_corpus()
    hostile = CorpusRecord.model_construct(
        id="hostile-1", title='<b>Hostile</b> "title" \u202e', contents=f"Hostile\n{HOSTILE_TEXT}"
    )
    filler = "Filler sentence about nothing in particular number {}. "
    half: list[str] = []
    while sum(map(len, half)) < LONG_BYTES // 2:
        half.append(filler.format(len(half)))
    body = "".join(half) + NEEDLE + " " + "".join(half)
    long = CorpusRecord(id="long-1", title="Long", contents=f"Long\n{body}")
    return [*records, hostile, long]


HOSTILE, LONG = 21, 22


def _doc(records: list[CorpusRecord], index: int, rank: int) -> DocumentTrace:
    r = records[index]
    return DocumentTrace(
        doc_index=index,
        doc_id=r.id,
        title=r.title,
        score=1 / rank,
        clue_score=10.0 / rank,
        clue_rank=rank,
        sparse_rank=None,
    )


def _evidence(records: list[CorpusRecord], index: int, text: str, window: int | None = None):
    r = records[index]
    assert text in r.contents, text
    return EvidenceTrace(
        doc_index=index,
        doc_id=r.id,
        title=r.title,
        start=index * 1000,
        end=index * 1000 + 10,
        text=text,
        window=window,
    )


def _prediction(
    qid: str, question: str, golds: list[str], method: str, answer: str, **trace
) -> Prediction:
    return Prediction(
        id=qid,
        question=question,
        golden_answers=golds,
        method=method,
        answer=answer,
        output_text=answer,
        well_formed=True,
        tokens_in=40,
        tokens_out=20,
        **trace,
    )


# (id, question, gold, RetroLLM's answer, its document, its evidence, RAG answers
# bm25/dense, the RAG passage document). RetroLLM answers the first four questions only.
QUESTIONS = [
    (
        "q-eiffel",
        "Who is the engineer the Eiffel Tower is named after?",
        ["Gustave Eiffel"],
        "Paris",
        EIFFEL,
        "It is named after the engineer Gustave Eiffel",
        ("Gustave Eiffel", "a tower"),
        EIFFEL,
    ),
    (
        "q-newton",
        "Who wrote the Principia Mathematica?",
        ["Isaac Newton"],
        "Isaac Newton",
        NEWTON,
        "Sir Isaac Newton was an English polymath",
        ("Leibniz", "Euler"),
        NEWTON,
    ),
    (
        "q-hostile",
        '<script>document.title="pwned"</script> which "secret" island?',
        ["Zanzibar"],
        "\u202eZanzibar\u202c",
        HOSTILE,
        "The secret island is Zanzibar",
        ("Zanzibar", "Java"),
        HOSTILE,
    ),
    (
        "q-long",
        "Where is the needle?",
        ["Quokka"],
        "a haystack",
        LONG,
        NEEDLE,
        ("hay", "straw"),
        LONG,
    ),
    (
        "q-rag-only",
        "What nationality was William Shakespeare?",
        ["English"],
        None,
        0,
        "",
        ("English", "Scottish"),
        SHAKESPEARE,
    ),
]


def cells() -> list[tuple[str, str, list[Prediction]]]:
    """(dataset, method, predictions) for nq (all four methods) and one triviaqa cell."""
    records = corpus()
    full: list[Prediction] = []
    rags: dict[str, list[Prediction]] = {m: [] for m in RAGS}
    direct: list[Prediction] = []
    for qid, question, golds, answer, doc, evidence, rag_answers, rag_doc in QUESTIONS:
        if answer is not None:
            window = WindowTrace(
                doc_index=doc,
                start=doc * 1000,
                end=doc * 1000 + 30,
                clue="named | engineer",
                score=0.9,
                weight=1.0,
                text=evidence,
            )
            other = WindowTrace(
                doc_index=0,
                start=1,
                end=20,
                clue="capital",
                score=0.2,
                text="Paris is the capital and largest city of France",
            )
            full.append(
                _prediction(
                    qid,
                    question,
                    golds,
                    FULL,
                    answer,
                    clues=[" engineer\nnamed", "\u202ertl clue"],
                    expansion_terms=["tower"],
                    documents=[_doc(records, doc, 1), _doc(records, 0, 2), _doc(records, 2, 3)],
                    located_windows=[(doc, doc * 1000, doc * 1000 + 30), (0, 1, 20)],
                    windows=[window, other],
                    evidences=[_evidence(records, doc, evidence, window=0)],
                )
            )
        passage = records[rag_doc].contents
        for method, rag_answer in zip(RAGS, rag_answers, strict=True):
            rags[method].append(
                _prediction(
                    qid,
                    question,
                    golds,
                    method,
                    rag_answer,
                    evidences=[_evidence(records, rag_doc, passage)],
                )
            )
        direct.append(_prediction(qid, question, golds, "direct", "I do not know"))
    trivia = [
        _prediction(
            "t-1",
            "Which planet is the largest?",
            ["Jupiter"],
            "rag-bm25",
            "Jupiter",
            evidences=[_evidence(records, 12, records[12].contents)],
        )
    ]
    return [
        ("nq", "direct", direct),
        ("nq", RAGS[0], rags[RAGS[0]]),
        ("nq", RAGS[1], rags[RAGS[1]]),
        ("nq", FULL, full),
        ("triviaqa", "rag-bm25", trivia),
    ]


def span_text(start: int, end: int) -> str:
    """Located windows' text (token offsets in these traces encode the document)."""
    records = corpus()
    if start == 1:
        return "Paris is the capital"
    doc = start // 1000
    text = next(q[5] for q in QUESTIONS if q[4] == doc and q[3] is not None)
    assert records[doc].contents.find(text) >= 0
    return text
