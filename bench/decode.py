"""Decoding benchmark: throughput, tokens, forward passes, the decoder's own overhead, and
jump-forward against step-by-step decoding, next to a naive-RAG baseline.

    python -m bench.decode [--questions 32] [--batch 1 16] [--threads 1]
        [--strategies retrollm naive-constrained] [--dataset nq] [--params params.yaml]
        [--jump off on] [--adapter data/models/adapter] [--baseline rag-bm25|none]
        [--set max_windows_total=16 ...] [--reference split_head=false window_cache=0]
        [--device cpu|cuda|cuda:N|auto]

Loads the default artifacts once (params.yaml paths, `decode` section), takes the first N
answerable test questions of the dataset, and prints one JSON line per (strategy, batch,
jump), then a markdown table:

- questions_per_min: N / wall time of RetroLLM.answer (SPLADE queries, decoding, traces);
- tokens_per_question: prompt tokens in, generated tokens out (forced ones included);
- forward_passes_per_question: forward passes that served the question (= tokens out
  without jump-forward); model_calls_per_question: batched forward calls / N;
- jump-forward: drafted and accepted tokens per question, fed_cells_per_question (chunk
  cells the model computed, padding of shorter chunks included), and
  identical_to_plain: questions whose generated tokens equal the step-by-step run's;
- outside_forward_share: 1 - (model forward time / wall time): index queries, eq. 12
  bonus, retrieval (documents, windows, window scoring), SPLADE, bookkeeping. Split
  by phase into retrieval_share (per-question retrieval when clues end), step_rules_share
  (per-step constraint work) and other_share (SPLADE queries, prompts, traces); and by
  kind into index_query_share (every CorpusIndex call, in any phase),
  window_scoring_share (the scorer embedding windows) and bookkeeping_share (the rest);
  windows_scored_per_question: window texts the scorer embedded (after the cache);
- cpu: the same figures by the process's CPU time (questions_per_cpu_min, the shares):
  other jobs on a shared machine stretch wall time unevenly, CPU time far less;
- with --reference, each configuration runs a second time under those decode overrides
  first (the earlier path, say), and the line says how many questions kept the same
  windows (kept_windows_identical) and generated the same ids (identical_to_reference);
- with --call-costs, jump-forward runs again under each `decode.jump_call_cost` given
  (the output is the same for any; only speed changes), and a `jump_call_cost` line names
  the fastest on this device, by CPU time on a CPU and by wall time on a GPU: the value to
  put into params.yaml for it.

The baseline (`evaluate.baseline_methods`, default rag-bm25) answers the same questions at
each batch size with the same backbone, in the same process, so its questions per minute
compare with RetroLLM's on equal terms. One warm-up question per configuration first
(numba kernels compile, caches fill). torch threads are fixed with --threads; the load
average is printed with each line because other processes on a shared machine slow
everything down; compare rows of one run, not runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning threads thrash shared cores

import argparse
import contextlib
import json
import platform
from pathlib import Path
from typing import Any

from bench.measure import measure, measure_baseline, sweep_call_cost
from bench.timers import HEAD_METHODS, INDEX_METHODS, SCORER_METHODS, Counter, Timers, patched

DEFAULT_STRATEGIES = ["retrollm", "retrollm-hard-windows", "naive-constrained", "unconstrained"]


def _machine(threads: int) -> dict[str, Any]:
    return {
        "threads": threads,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | batch | jump | overrides | q/min | q/CPU-min | fwd passes/q | fed cells/q "
        "| tokens in+out | outside fwd (CPU) | window scoring (CPU) | identical | "
        "same ids / kept windows |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] == "jump_call_cost":
            continue
        tokens = r["tokens_per_question"]
        cpu = r.get("cpu", {})
        share = {k: f"{100 * cpu[k]:.0f}%" if k in cpu else "-" for k in _SHARES}
        same = "-"
        if "identical_to_reference" in r:
            same = f"{r['identical_to_reference']} / {r['kept_windows_identical']}"
        overrides = " ".join(f"{k}={v}" for k, v in r.get("overrides", {}).items()) or "-"
        lines.append(
            f"| {r['method']} | {r['batch']} | {r.get('jump', '-')} | {overrides} | "
            f"{r['questions_per_min']:.1f} | {cpu.get('questions_per_cpu_min', '-')} | "
            f"{r.get('forward_passes_per_question', '-')} | "
            f"{r.get('fed_cells_per_question', '-')} | "
            f"{tokens['in']:.0f}+{tokens['out']:.0f} | {share['outside_forward_share']} | "
            f"{share['window_scoring_share']} | {r.get('identical_to_plain', '-')} | {same} |"
        )
    return "\n".join(lines)


_SHARES = ("outside_forward_share", "window_scoring_share")


def _same(a: list[Any], b: list[Any]) -> str:
    return f"{sum(x == y for x, y in zip(a, b, strict=True))}/{len(a)}"


def _overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strategies", nargs="+", default=DEFAULT_STRATEGIES)
    parser.add_argument("--jump", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--adapter", type=Path, help="trained adapter folder (default: none)")
    parser.add_argument("--baseline", default="rag-bm25", help="evaluate method, or none")
    parser.add_argument("--dataset", default="nq")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--device", help="decode.device for every model (default: params)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="decode overrides (YAML values)"
    )
    parser.add_argument(
        "--reference",
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="also run each configuration under these decode overrides and compare",
    )
    parser.add_argument(
        "--call-costs",
        nargs="*",
        type=float,
        default=[],
        metavar="CELLS",
        help="also run jump-forward with each decode.jump_call_cost and name the fastest",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from retrollm.decoding import DecodeConfig
    from retrollm.decoding.forward import ModelForward
    from retrollm.decoding.pipeline import RetroLLM
    from retrollm.decoding.scores import LMHead
    from retrollm.index import CorpusIndex
    from retrollm.qa import load_qa
    from stages.common import load_params, load_paths
    from stages.evaluate import EvaluateParams, answer_fn

    paths = load_paths(args.params)
    base = load_params("decode", DecodeConfig, args.params)
    overrides = _overrides(args.set) | ({"device": args.device} if args.device else {})
    base = DecodeConfig.model_validate(base.model_dump() | overrides)
    reference = _overrides(args.reference) if args.reference is not None else None
    records = [r for r in load_qa(paths.qa / args.dataset, "test") if r.answerable]
    questions = records[: args.questions]
    # Warm up on a question outside the measured ones: it must not fill the window cache.
    warm_up = records[len(questions) : len(questions) + 1] or questions[:1]
    rows: list[dict[str, Any]] = []

    def emit(line: dict[str, Any]) -> None:
        line |= _machine(args.threads)
        rows.append(line)
        print(json.dumps(line), flush=True)

    if args.baseline != "none":
        evaluate = load_params("evaluate", EvaluateParams, args.params)
        for batch in args.batch:
            params = evaluate.model_copy(
                update={"baselines": evaluate.baselines.model_copy(update={"batch_size": batch})}
            )
            spec = params.spec(args.baseline)
            answer = answer_fn(args.baseline, spec, params, paths, base.device)
            answer(warm_up)
            emit({"method": args.baseline, "batch": batch} | measure_baseline(answer, questions))

    loaded = RetroLLM.from_artifacts(
        paths, base.model_copy(update={"strategy": "retrollm"}), adapter=args.adapter
    )
    stack = contextlib.ExitStack()
    forward_time = stack.enter_context(patched(ModelForward, ("__call__",), Counter()))
    stack.enter_context(patched(LMHead, HEAD_METHODS, forward_time))
    timers = Timers(
        forward_time,
        stack.enter_context(patched(CorpusIndex, INDEX_METHODS, Counter())),
        stack.enter_context(patched(loaded.scorer, SCORER_METHODS, Counter())),
    )

    def run(config: DecodeConfig) -> tuple[dict[str, Any], list[list[int]], list[Any]]:
        decoder = loaded.with_config(config)
        decoder.answer(warm_up)
        return measure(decoder, questions, timers)

    for strategy in args.strategies:
        for batch in args.batch:
            plain: list[list[int]] | None = None
            for jump in args.jump:
                update = {"strategy": strategy, "batch_size": batch, "jump_forward": jump == "on"}
                config = base.model_copy(update=update)
                head: dict[str, Any] = {"method": strategy, "batch": batch, "jump": jump}
                head |= {"questions": len(questions), "adapter": str(args.adapter or "")}
                earlier = None
                if reference is not None:
                    ref = DecodeConfig.model_validate(config.model_dump() | reference)
                    result, ids, kept = run(ref)
                    earlier = (ids, kept)
                    emit(head | {"overrides": overrides | reference} | result)
                result, generated, kept = run(config)
                line = head | ({"overrides": overrides} if overrides else {})
                if jump == "off":
                    plain = generated
                elif plain is not None:
                    line["identical_to_plain"] = _same(plain, generated)
                if earlier is not None:
                    line["identical_to_reference"] = _same(earlier[0], generated)
                    line["kept_windows_identical"] = _same(earlier[1], kept)
                emit(line | result)
                if jump == "on" and args.call_costs:
                    emit(sweep_call_cost(run, config, args.call_costs, head, generated, emit))
    stack.close()
    print()
    print(_table(rows))


if __name__ == "__main__":
    main()
