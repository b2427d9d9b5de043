"""The retrieval funnel of evaluated methods, read from the evaluate stages' predictions
(nothing is decoded here): where each method loses the gold answer.

    python -m bench.funnel [--methods rag-bm25 retrollm-lora] [--datasets nq triviaqa]

Columns (percent of the method's questions, gold answer as Acc matches it): in a
candidate document, in a located window, in a kept window, in any evidence, in the first
evidence, in the answer; then evidences and tokens per question (retrollm/funnel.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retrollm.artifacts import read_records
from retrollm.corpus import load_corpus
from retrollm.funnel import CorpusText, funnel, markdown
from retrollm.models import load_tokenizer
from retrollm.tokenization import load_tokens
from schemas import Prediction
from stages.common import load_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", help="default: every evaluated method")
    parser.add_argument("--datasets", nargs="+", default=["nq", "triviaqa"])
    parser.add_argument("--eval-dir", type=Path, help="default: paths.eval of params.yaml")
    args = parser.parse_args()
    paths = load_paths()
    root = args.eval_dir or paths.eval
    tokens, _ = load_tokens(paths.tokens)
    text = CorpusText(
        [r.contents for r in load_corpus(paths.corpus)],
        lambda start, end: tokens[start:end],
        load_tokenizer(paths.model),
    )
    rows = []
    for dataset in args.datasets:
        methods = args.methods or sorted(p.name for p in (root / dataset).iterdir() if p.is_dir())
        for method in methods:
            source = root / dataset / method / "predictions.msgpack"
            if not source.is_file():
                print(f"# {dataset}/{method}: not evaluated ({source} missing)")
                continue
            predictions = list(read_records(source, Prediction))
            rows.append((dataset, funnel(method, predictions, text.document, text.span)))
    print("\n".join(markdown(rows)))


if __name__ == "__main__":
    main()
