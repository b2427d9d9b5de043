"""Decoding benchmark: throughput, tokens, forward passes, and the decoder's own overhead.

    python -m bench.decode [--questions 32] [--batch 1 16] [--threads 2]
        [--strategies retrollm naive-constrained] [--dataset nq] [--params params.yaml]
        [--set max_windows_total=16 ...]

Loads the default artifacts once (params.yaml paths, `decode` section), takes the first N
answerable test questions of the dataset, and prints one JSON line per (strategy, batch):

- questions_per_min: N / wall time of RetroLLM.answer (SPLADE queries, decoding, traces);
- tokens_per_question: prompt tokens in, generated tokens out (forced ones included);
- forward_passes_per_question: forward passes that served the question (= tokens out);
  model_calls_per_question: batched forward calls / N (what batching saves);
- outside_forward_share: 1 - (model forward time / wall time): index queries, eq. 12
  bonus, retrieval (documents, windows, window scoring), SPLADE, bookkeeping. Split
  into retrieval_share (per-question retrieval when clues end), step_rules_share
  (per-step constraint work) and other_share (SPLADE queries, prompts, traces).

One warm-up question per strategy first (numba kernels compile, caches fill). torch threads
are fixed with --threads so numbers compare; the load average is printed with each line
because other processes on a shared machine slow the model down, not the overhead share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

DEFAULT_STRATEGIES = ["retrollm", "retrollm-hard-windows", "naive-constrained", "unconstrained"]


def measure(decoder: Any, questions: list[Any]) -> dict[str, Any]:
    decoder.decoder.loop_stats.clear()
    start = time.perf_counter()
    predictions = decoder.answer(questions)
    wall = time.perf_counter() - start
    n = len(predictions)
    forward = sum(p.timings.get("forward", 0.0) for p in predictions)
    decoded = sum(p.timings.get("total", 0.0) for p in predictions)
    retrieval = sum(p.timings.get("retrieval", 0.0) for p in predictions)
    calls = sum(s.forward_passes for s in decoder.decoder.loop_stats)
    return {
        "questions_per_min": round(60.0 * n / wall, 2),
        "tokens_per_question": {
            "in": round(sum(p.tokens_in for p in predictions) / n, 1),
            "out": round(sum(p.tokens_out for p in predictions) / n, 1),
        },
        "forward_passes_per_question": round(sum(p.forward_passes for p in predictions) / n, 1),
        "model_calls_per_question": round(calls / n, 2),
        "outside_forward_share": round(1.0 - forward / wall, 4),
        "retrieval_share": round(retrieval / wall, 4),
        "step_rules_share": round((decoded - forward - retrieval) / wall, 4),
        "other_share": round((wall - decoded) / wall, 4),
        "seconds": round(wall, 2),
        "well_formed": sum(p.well_formed for p in predictions),
        "statuses": _count(p.status for p in predictions),
    }


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strategies", nargs="+", default=DEFAULT_STRATEGIES)
    parser.add_argument("--dataset", default="nq")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="decode overrides (YAML values)"
    )
    args = parser.parse_args()

    import torch
    import yaml

    torch.set_num_threads(args.threads)
    from retrollm.decoding import DecodeConfig
    from retrollm.decoding.pipeline import RetroLLM
    from retrollm.qa import load_qa
    from stages.common import load_params, load_paths

    paths = load_paths(args.params)
    base = load_params("decode", DecodeConfig, args.params)
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    base = DecodeConfig.model_validate(base.model_dump() | overrides)
    records = [r for r in load_qa(paths.qa / args.dataset, "test") if r.answerable]
    questions = records[: args.questions]
    loaded = RetroLLM.from_artifacts(paths, base.model_copy(update={"strategy": "retrollm"}))
    for strategy in args.strategies:
        for batch in args.batch:
            config = base.model_copy(update={"strategy": strategy, "batch_size": batch})
            decoder = loaded.with_config(config)
            decoder.answer(questions[:1])  # warm-up
            result = measure(decoder, questions)
            line = {"strategy": strategy, "batch": batch, "questions": len(questions)}
            line |= {"overrides": overrides} if overrides else {}
            line |= result | {
                "threads": args.threads,
                "load_average_1m": round(os.getloadavg()[0], 2),
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
