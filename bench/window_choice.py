"""Which ranking of the located windows keeps the gold answer most often? A measurement
of kept-window recall, not a decoder path.

    python -m bench.window_choice [--questions 100] [--dataset nq] [--adapter DIR]

Decodes the first N answerable test questions until their clues close (as
bench/window_proxies.py does: the located windows are those full decoding finds), then
ranks each question's located windows several ways, keeps the top `decode.top_windows`
under the decode section's diversity rules, and counts questions whose kept windows hold
a gold answer (as Acc matches it):

- scorer: the configured scorer's score alone (what the decoder keeps today);
- docprior-B: min-max scorer score plus B times the window's document prior,
  1 - rank / documents, rank 0 the best of the fused document ranking (eq. 8), as
  `decode.window_doc_prior: B` ranks them;
- lexical-G: min-max scorer score plus G times the share of the question's content
  words that occur in the window;
- located: any located window holds one (the ceiling for any ranking).

Each line carries the count out of N and the paired difference with `scorer` (questions
only one ranking keeps, exact McNemar p), so a gain is read against its noise.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from bench.window_proxies import capture, capture_arguments, kept_windows
from retrollm.metrics import has_answer
from retrollm.retrieval.windows import normalize_scores, with_document_prior
from retrollm.stats import mcnemar_exact

PRIOR_WEIGHTS = (0.25, 0.5, 1.0)
LEXICAL_WEIGHTS = (0.25, 0.5, 1.0)
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an the of in on at to for by with from and or is are was were be been who whom what "
        "which when where why how did do does has have had that this these those it its as",
    )
)


def lexical_overlap(question: str, texts: list[str]) -> np.ndarray:
    """Share of the question's content words that occur in each window text."""

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9]+", text.lower())) - _STOPWORDS

    wanted = words(question)
    if not wanted:
        return np.zeros(len(texts))
    return np.asarray([len(wanted & words(t)) / len(wanted) for t in texts])


def main() -> None:
    args = capture_arguments(__doc__, questions=100).parse_args()

    import torch

    torch.set_num_threads(args.threads)
    captured, _, config = capture(args)
    captured = [c for c in captured if c["windows"]]

    def holds(c: dict[str, Any], kept: list[int]) -> bool:
        return any(has_answer(c["texts"][i], c["gold"]) for i in kept)

    scores = {"scorer": [normalize_scores(c["scores"], "minmax", 0.0) for c in captured]}
    for weight in PRIOR_WEIGHTS:
        scores[f"docprior-{weight}"] = [
            with_document_prior(c["windows"], c["scores"], c["doc_order"], weight) for c in captured
        ]
    for weight in LEXICAL_WEIGHTS:
        scores[f"lexical-{weight}"] = [
            s + weight * lexical_overlap(c["question"], c["texts"])
            for s, c in zip(scores["scorer"], captured, strict=True)
        ]
    hits = {
        name: [holds(c, kept_windows(c, s, config)) for c, s in zip(captured, ranked, strict=True)]
        for name, ranked in scores.items()
    }
    located = sum(holds(c, list(range(len(c["windows"])))) for c in captured)
    n = len(captured)
    print(json.dumps({"dataset": args.dataset, "questions_with_windows": n, "located": located}))
    base = hits["scorer"]
    for name, row in hits.items():
        only_new = sum(b and not a for a, b in zip(base, row, strict=True))
        only_base = sum(a and not b for a, b in zip(base, row, strict=True))
        print(json.dumps({
            "ranking": name, "kept_holds_gold": f"{sum(row)}/{n}", "gained": only_new,
            "lost": only_base, "mcnemar_p": round(mcnemar_exact(only_new, only_base), 4),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
