"""Would a cheaper window scorer keep the same windows? A measurement, not a decoder path.

    python -m bench.window_proxies [--questions 64] [--dataset nq] [--adapter DIR]

Decodes the first N answerable test questions until their clues close (a small token
budget: the clues, and so the located windows, are what full decoding produces), keeps
every question's located windows with the scorer's scores, and then asks, for each
cheaper way to rank them, how often the kept windows (top_windows with the decode
section's diversity rules) stay identical to the full scorer's, and how often a gold
answer is in them:

- prerank-trunc32-N: the same bi-encoder on each window's first 32 word pieces picks the
  N best, which the full scorer then ranks (costs about a quarter of a window each, plus
  N full windows);
- prerank-static-N: the mean of the bi-encoder's input word embeddings picks them (free);
- prerank-order-N: the first N windows in document-rank order (no pre-ranking at all);
- prerank-bm25-N: BM25 of the question's words over the window's words, with the
  corpus's document frequencies (free beside the encoder);
- bm25-only: BM25 in place of the scorer (nothing encoded at all);
- int8: the full scorer with int8 dynamic quantisation of its linear layers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

PRERANK_SIZES = (8, 12, 16)
BM25_K1, BM25_B = 1.5, 0.75  # the rag-bm25 baseline's (bm25s defaults, Lucene idf)


def capture_arguments(doc: str | None, questions: int) -> argparse.ArgumentParser:
    """The command line of a bench that captures located windows (`capture` reads it)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=questions)
    parser.add_argument("--dataset", default="nq")
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=1)
    return parser


def capture(args: argparse.Namespace) -> tuple[list[dict[str, Any]], Any, Any]:
    from retrollm.decoding import DecodeConfig
    from retrollm.decoding import contexts as contexts_module
    from retrollm.decoding.pipeline import RetroLLM
    from retrollm.qa import load_qa
    from stages.common import load_params, load_paths

    paths = load_paths(args.params)
    config = load_params("decode", DecodeConfig, args.params)
    records = [r for r in load_qa(paths.qa / args.dataset, "test") if r.answerable]
    records = records[: args.questions]
    gold = {r.id: r.golden_answers for r in records}
    decoder = RetroLLM.from_artifacts(
        paths, config.model_copy(update={"budget_tokens": 100}), adapter=args.adapter
    )
    captured: list[dict[str, Any]] = []
    finish = contexts_module.RetrievalContexts._finish

    def keep(self: Any, pending: Any, scores: np.ndarray) -> Any:
        captured.append(
            {"question": pending.query.question, "windows": pending.windows,
             "texts": pending.texts, "scores": np.asarray(scores), "gold": gold[pending.query.id],
             "doc_order": [d.doc_index for d in pending.documents]}
        )  # fmt: skip
        return finish(self, pending, scores)

    contexts_module.RetrievalContexts._finish = keep  # type: ignore[method-assign]
    try:
        decoder.answer(records)
    finally:
        contexts_module.RetrievalContexts._finish = finish  # type: ignore[method-assign]
    return captured, decoder.scorer, config


def kept_windows(
    c: dict[str, Any], scores: np.ndarray, config: Any, subset: Any = None
) -> list[int]:
    from retrollm.retrieval.windows import top_windows

    index = list(range(len(c["windows"]))) if subset is None else sorted(int(i) for i in subset)
    ranked = top_windows(
        [c["windows"][i] for i in index], [float(scores[i]) for i in index],
        config.top_windows, config.max_kept_windows_per_doc, config.disjoint_windows,
    )  # fmt: skip
    position = {w: i for i, w in enumerate(c["windows"])}
    return [position[w] for w, _ in ranked]


def _has_answer(c: dict[str, Any], kept: list[int]) -> bool:
    def norm(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))

    answers = [norm(a) for a in c["gold"] if norm(a)]
    return any(a in norm(c["texts"][i]) for i in kept for a in answers)


def _static(scorer: Any, texts: list[str]) -> np.ndarray:
    module = scorer.model[0]
    table = module.auto_model.embeddings.word_embeddings.weight.detach().cpu().numpy()
    special = set(module.tokenizer.all_special_ids)
    rows = []
    for text in texts:
        ids = module.tokenizer(text, add_special_tokens=False, truncation=True, max_length=128)
        ids = [i for i in ids["input_ids"] if i not in special]
        vector = table[ids].mean(0) if ids else np.zeros(table.shape[1])
        rows.append(vector / (np.linalg.norm(vector) + 1e-9))
    return np.asarray(rows)


def _bm25(
    questions: list[str], windows: list[list[str]], corpus_texts: list[str]
) -> list[np.ndarray]:
    """BM25 of each question over its own windows, with the corpus's idf."""
    from collections import Counter

    from retrollm.retrieval.bm25 import tokenize

    df = Counter(word for doc in tokenize(corpus_texts) for word in set(doc))
    n = len(corpus_texts)
    out = []
    for question, texts in zip(questions, windows, strict=True):
        words = tokenize([question])[0]
        bags = [Counter(doc) for doc in tokenize(texts)] if texts else []
        lengths = np.array([sum(b.values()) for b in bags], dtype=float)
        mean = (float(lengths.mean()) if bags else 0.0) or 1.0
        norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / mean)
        scores = np.zeros(len(bags))
        for word in set(words):
            idf = np.log(1 + (n - df[word] + 0.5) / (df[word] + 0.5))
            tf = np.array([b[word] for b in bags], dtype=float)
            scores += idf * tf / (tf + norm)  # bm25s (Lucene) drops the constant k1 + 1
        out.append(scores)
    return out


def main() -> None:
    parser = capture_arguments(__doc__, questions=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(PRERANK_SIZES))
    args = parser.parse_args()

    import torch

    from retrollm.corpus import load_corpus
    from stages.common import load_paths

    torch.set_num_threads(args.threads)
    captured, scorer, config = capture(args)
    exact = [kept_windows(c, c["scores"], config) for c in captured]
    rankers: dict[str, list[np.ndarray]] = {
        "order": [-np.arange(len(c["windows"]), dtype=float) for c in captured]
    }
    corpus_texts = [r.contents for r in load_corpus(load_paths(args.params).corpus)]
    rankers["bm25"] = _bm25(
        [c["question"] for c in captured], [c["texts"] for c in captured], corpus_texts
    )
    questions = scorer.embed([c["question"] for c in captured])
    statics = _static(scorer, [c["question"] for c in captured])
    rankers["static"] = [_static(scorer, c["texts"]) @ statics[k] for k, c in enumerate(captured)]
    scorer.model.max_seq_length = 32
    rankers["trunc32"] = [scorer.embed(c["texts"]) @ questions[k] for k, c in enumerate(captured)]
    scorer.model.max_seq_length = config.scorer_max_length
    variants = {
        f"prerank-{name}-{n}": [
            kept_windows(c, c["scores"], config, np.argsort(-r, kind="stable")[:n])
            for c, r in zip(captured, ranks, strict=True)
        ]
        for name, ranks in rankers.items()
        for n in args.sizes
    }
    variants["bm25-only"] = [
        kept_windows(c, r, config) for c, r in zip(captured, rankers["bm25"], strict=True)
    ]
    scorer.model = torch.ao.quantization.quantize_dynamic(
        scorer.model, {torch.nn.Linear}, dtype=torch.qint8
    )
    quantised = scorer.embed([c["question"] for c in captured])
    variants["int8"] = [
        kept_windows(c, scorer.embed(c["texts"]) @ quantised[k], config)
        for k, c in enumerate(captured)
    ]
    n = len(captured)
    print(json.dumps({"questions": n, "windows_per_question": sum(len(c["windows"]) for c in
                      captured) / n, "answer_in_kept_windows": sum(map(_has_answer, captured,
                      exact))}))  # fmt: skip
    for name, kept in variants.items():
        same = sum(a == b for a, b in zip(exact, kept, strict=True))
        answer = sum(map(_has_answer, captured, kept))
        print(json.dumps({"variant": name, "kept_identical": f"{same}/{n}",
                          "answer_in_kept_windows": f"{answer}/{n}"}))  # fmt: skip


if __name__ == "__main__":
    main()
