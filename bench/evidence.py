"""Evidence quality of evaluated methods: what training changes, read from the evaluate
stages' predictions (nothing is decoded here).

    python -m bench.evidence [--methods retrollm retrollm-lora] [--datasets nq triviaqa]

Per method, over the datasets' evaluated questions together: n, well-formed outputs (%),
questions with a gold answer in some evidence (%), evidences holding a gold answer (% of
all evidences), evidences per question, evidence tokens per question, and Acc.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retrollm.artifacts import read_records
from retrollm.metrics import accuracy, has_answer
from schemas import Prediction
from stages.common import load_paths


def summarize(predictions: list[Prediction]) -> dict[str, float]:
    n = max(1, len(predictions))
    evidences = [e for p in predictions for e in p.evidences]
    hits = [has_answer(e.text, p.golden_answers) for p in predictions for e in p.evidences]
    asked = [any(has_answer(e.text, p.golden_answers) for e in p.evidences) for p in predictions]
    return {
        "n": len(predictions),
        "well_formed": 100 * sum(p.well_formed for p in predictions) / n,
        "question_has_gold_evidence": 100 * sum(asked) / n,
        "evidence_has_gold": 100 * sum(hits) / max(1, len(hits)),
        "evidences_per_question": len(evidences) / n,
        "evidence_tokens_per_question": sum(e.end - e.start for e in evidences) / n,
        "acc": 100 * sum(accuracy(p.answer, p.golden_answers) for p in predictions) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["retrollm", "retrollm-lora"])
    parser.add_argument("--datasets", nargs="+", default=["nq", "triviaqa"])
    parser.add_argument("--eval-dir", type=Path, help="default: paths.eval of params.yaml")
    args = parser.parse_args()
    root = args.eval_dir or load_paths().eval
    print(
        "| method | n | well-formed % | questions with gold in evidence % | "
        "evidences with gold % | evidences/q | evidence tokens/q | Acc |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        predictions = [
            p
            for dataset in args.datasets
            for p in read_records(root / dataset / method / "predictions.msgpack", Prediction)
        ]
        s = summarize(predictions)
        print(
            f"| {method} | {s['n']} | {s['well_formed']:.1f} | "
            f"{s['question_has_gold_evidence']:.1f} | {s['evidence_has_gold']:.1f} | "
            f"{s['evidences_per_question']:.2f} | {s['evidence_tokens_per_question']:.0f} | "
            f"{s['acc']:.1f} |"
        )


if __name__ == "__main__":
    main()
