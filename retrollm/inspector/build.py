"""Build the inspector page from evaluate outputs (data/eval/DATASET/METHOD/) or from one
prediction (`python -m retrollm ask --html`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import msgpack

from retrollm.artifacts import ArtifactError, read_records
from retrollm.inspector.data import Cell, CorpusView, page_data
from retrollm.inspector.page import PAGE_FILE, write_page
from schemas.prediction import Prediction
from schemas.records import CorpusRecord

PREDICTIONS = "predictions.msgpack"


def load_cell(eval_dir: Path, dataset: str, method: str) -> Cell:
    """The predictions of one evaluated cell; a missing or unreadable file is an error
    naming it."""
    path = Path(eval_dir) / dataset / method / PREDICTIONS
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; run the evaluate stage of {dataset} {method}")
    try:
        predictions = list(read_records(path, Prediction))
    except (ValueError, msgpack.UnpackException) as error:
        raise ArtifactError(f"{path}: not a msgpack stream of predictions: {error}") from error
    return Cell(dataset, method, predictions)


def corpus_view(
    corpus_dir: Path, tokens_dir: Path | None = None, model_dir: Path | None = None
) -> CorpusView:
    """The pipeline's corpus; with its tokens and the tokenizer, located windows are read
    too (the funnel's located-window step), else that step is left unknown."""
    from retrollm.corpus import load_corpus

    records = load_corpus(corpus_dir)
    if tokens_dir is None or model_dir is None:
        return CorpusView(records)
    from retrollm.funnel import CorpusText
    from retrollm.models import load_tokenizer
    from retrollm.tokenization import load_tokens

    tokens, offsets = load_tokens(tokens_dir)
    if len(offsets) != len(records) + 1:
        raise ArtifactError(
            f"{tokens_dir} holds {len(offsets) - 1} documents, {corpus_dir} {len(records)}: "
            "rerun tokenize_corpus"
        )
    text = CorpusText([r.contents for r in records], lambda s, e: tokens[s:e],
                      load_tokenizer(model_dir))  # fmt: skip
    return CorpusView(records, text.span)


def build_inspector(
    eval_dir: Path,
    cells: Sequence[tuple[str, str]],
    corpus: CorpusView,
    out_dir: Path,
    full_method: str | None,
    rag_methods: Sequence[str],
) -> dict[str, int]:
    """Write out_dir/index.html over every (dataset, method) cell; returns counts."""
    loaded = [load_cell(eval_dir, dataset, method) for dataset, method in cells]
    data = page_data(loaded, corpus, full_method, rag_methods)
    path = write_page(data, Path(out_dir) / PAGE_FILE)
    return {
        "inspect_questions": len(data.questions),
        "inspect_documents": sum(d.text is not None for d in data.documents.values()),
        "inspect_bytes": path.stat().st_size,
    }


def write_one(
    prediction: Prediction,
    records: Sequence[CorpusRecord],
    span_text: Callable[[int, int], str] | None,
    path: Path,
) -> Path:
    """The same view for one question (no gold answers: no scores to speak of), written
    to `path` (a file name; its folder is created)."""
    cell = Cell("ask", prediction.method, [prediction])
    data = page_data([cell], CorpusView(records, span_text), prediction.method, [],
                     title=f"RetroLLM: {prediction.question}")  # fmt: skip
    return write_page(data, path)
