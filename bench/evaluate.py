"""Questions per minute and tokens per question of every evaluated method.

    python -m bench.evaluate [--dataset nq] [--n 8] [--methods direct rag-bm25 ...]

Runs each method of params.yaml `evaluate` on the first N questions of the evaluation
sample (no DVC, nothing written), after one warm-up question, and prints one row per
method. This is what `evaluate.limit` is sized from: the whole matrix's time is about
sum over methods of limit / (questions per minute), per dataset, plus model loading.
Timings on a shared CPU are noisy; run it twice. Acc, R@5 (a gold answer in the first five
evidences or passages) and the well-formed share (wf %) are over the timed questions.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP workers thrash when the cores are shared (measured
# here: 2 threads took 10x longer than 1 with other jobs running; passive waiting, none).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time

import torch

from retrollm.metrics import aggregate, score
from retrollm.qa import load_qa
from stages.common import load_params, load_paths
from stages.evaluate import EvaluateParams, answer_fn, select_questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="nq")
    parser.add_argument("--n", type=int, default=8, help="timed questions per method")
    parser.add_argument("--methods", nargs="*", help="default: every method in params")
    args = parser.parse_args()
    params = load_params("evaluate", EvaluateParams)
    paths = load_paths()
    torch.set_num_threads(params.threads)
    records = load_qa(paths.qa / args.dataset, params.split)
    limit = None if params.limit is None else max(params.limit, 1 + args.n)
    sample = select_questions(records, limit, params.seed, params.answerable_only)
    questions = sample[1 : 1 + args.n]  # the first one warms up
    every = params.baseline_methods | params.methods | params.adapter_methods
    names = args.methods or list(every)
    print(f"{args.dataset}: {len(questions)} questions, torch threads {params.threads}")
    print(
        f"{'method':<22}{'load s':>8}{'q/min':>8}{'s/q':>8}{'tok/q':>8}{'in':>7}{'out':>6}"
        f"{'Acc':>7}{'R@5':>7}{'wf %':>7}"
    )
    for name in names:
        start = time.perf_counter()
        answer = answer_fn(name, params.spec(name), params, paths)
        answer(sample[:1])  # warm-up: first-call allocations and lazy imports
        load = time.perf_counter() - start
        start = time.perf_counter()
        made = answer(questions)
        seconds = (time.perf_counter() - start) / max(1, len(questions))
        result = aggregate([score(p) for p in made])
        print(
            f"{name:<22}{load:>8.1f}{60 / seconds:>8.1f}{seconds:>8.2f}{result.tokens:>8.0f}"
            f"{result.tokens_in:>7.0f}{result.tokens_out:>6.0f}"
            f"{result.acc:>7.1f}{result.r5:>7.1f}{result.well_formed:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
