"""Figures of one benchmarked configuration (bench/decode.py documents each)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.timers import Timers


def measure(
    decoder: Any, questions: list[Any], timers: Timers
) -> tuple[dict[str, Any], list[list[int]], list[list[tuple[int, int, int]]]]:
    """Figures of one configuration, each question's generated ids and kept windows."""
    decoder.decoder.loop_stats.clear()
    timers.clear()
    index, scoring = timers.index, timers.scoring
    contexts = decoder.decoder.contexts
    embedded = contexts.scores.embedded if contexts is not None else 0
    start, cpu_start = time.perf_counter(), time.process_time()
    hypotheses = decoder.hypotheses(questions)
    predictions = [decoder.prediction(h) for h in hypotheses]
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    n = len(predictions)
    forward = sum(p.timings.get("forward", 0.0) for p in predictions)
    decoded = sum(p.timings.get("total", 0.0) for p in predictions)
    retrieval = sum(p.timings.get("retrieval", 0.0) for p in predictions)
    stats = decoder.decoder.loop_stats
    result = {
        "questions_per_min": round(60.0 * n / wall, 2),
        "tokens_per_question": _tokens_per_question(predictions),
        "forward_passes_per_question": round(sum(p.forward_passes for p in predictions) / n, 1),
        "model_calls_per_question": round(sum(s.forward_passes for s in stats) / n, 2),
        "drafted_per_question": round(sum(s.drafted_tokens for s in stats) / n, 1),
        "accepted_per_question": round(sum(s.accepted_tokens for s in stats) / n, 1),
        "fed_cells_per_question": round(sum(s.fed_tokens for s in stats) / n, 1),
        "outside_forward_share": round(1.0 - forward / wall, 4),
        "retrieval_share": round(retrieval / wall, 4),
        "step_rules_share": round((decoded - forward - retrieval) / wall, 4),
        "other_share": round((wall - decoded) / wall, 4),
        "index_query_share": round(index.seconds / wall, 4),
        "window_scoring_share": round(scoring.seconds / wall, 4),
        "bookkeeping_share": round(1.0 - (forward + index.seconds + scoring.seconds) / wall, 4),
        "windows_located_per_question": round(
            sum(len(h.context.located) for h in hypotheses if h.context is not None) / n, 1
        ),
        "windows_scored_per_question": round(
            ((contexts.scores.embedded if contexts is not None else 0) - embedded) / n, 1
        ),
        "cpu": _cpu_figures(n, cpu, timers),
        "seconds": round(wall, 2),
        "well_formed": sum(p.well_formed for p in predictions),
        "statuses": _count(p.status for p in predictions),
    }
    kept = [
        [(w.doc_index, w.start, w.end) for w in h.context.windows] if h.context else []
        for h in hypotheses
    ]
    return result, [list(h.generated) for h in hypotheses], kept


def _cpu_figures(n: int, cpu: float, timers: Timers) -> dict[str, float]:
    """The same split by the process's CPU time (see bench/timers.py)."""
    return {
        "questions_per_cpu_min": round(60.0 * n / cpu, 2),
        "outside_forward_share": round(1.0 - timers.forward.cpu / cpu, 4),
        "index_query_share": round(timers.index.cpu / cpu, 4),
        "window_scoring_share": round(timers.scoring.cpu / cpu, 4),
        "seconds": round(cpu, 2),
    }


def measure_baseline(answer: Any, questions: list[Any]) -> dict[str, Any]:
    start, cpu_start = time.perf_counter(), time.process_time()
    predictions = answer(questions)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    n = len(predictions)
    return {
        "questions_per_min": round(60.0 * n / wall, 2),
        "tokens_per_question": _tokens_per_question(predictions),
        "cpu": {"questions_per_cpu_min": round(60.0 * n / cpu, 2), "seconds": round(cpu, 2)},
        "seconds": round(wall, 2),
    }


def _tokens_per_question(predictions: list[Any]) -> dict[str, float]:
    n = len(predictions)
    return {
        "in": round(sum(p.tokens_in for p in predictions) / n, 1),
        "out": round(sum(p.tokens_out for p in predictions) / n, 1),
    }


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def sweep_call_cost(
    run: Callable[[Any], tuple[dict[str, Any], list[list[int]], list[Any]]],
    config: Any,
    costs: list[float],
    head: dict[str, Any],
    generated: list[list[int]],
    emit: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Decode under each jump_call_cost (`run` measures one config), check every run
    generates what `generated` holds, and name the fastest. Chunk widths trade calls for
    padding, and padding stays in the KV cache as masked cells until compaction, so every
    later call attends over it too: a fitted per-call cost overrates wide chunks, and
    only whole runs tell which value is fastest."""
    by = "questions_per_min" if config.device.startswith("cuda") else "questions_per_cpu_min"
    speed: dict[float, float] = {}
    for cost in costs:
        result, ids, _ = run(config.model_copy(update={"jump_call_cost": cost}))
        if ids != generated:
            raise RuntimeError(f"jump_call_cost={cost} changed the output: a jump-forward bug")
        emit(head | {"overrides": {"jump_call_cost": cost}} | result)
        speed[cost] = result[by] if by in result else result["cpu"][by]
    best = max(speed, key=speed.__getitem__)
    return {"method": "jump_call_cost", "batch": head["batch"], "best": best, "by": by} | {
        "speeds": {str(k): v for k, v in speed.items()}
    }
