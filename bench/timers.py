"""Wall-time counters the decode benchmark wraps around the index and the window scorer,
so it can split the time outside the forward pass without timing code in the engine.

A call that runs inside another timed call of the same counter (locate calls state and
positions) is counted once, by the outermost call. Each counter keeps wall time and the
process's CPU time: on a shared machine other jobs stretch wall time unevenly over a run,
CPU time much less, so shares of CPU time compare better between runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# CorpusIndex methods a decoder calls: suffix-array queries and corpus reads.
INDEX_METHODS = (
    "restrict",
    "state",
    "extend",
    "continuations",
    "positions",
    "positions_and_docs",
    "positions_with_next",
    "window_counts",
    "count",
    "next_tokens",
    "locate",
    "doc_of",
    "extract",
)
SCORER_METHODS = ("embed", "score")
HEAD_METHODS = ("full", "at")  # scores.LMHead: forward-pass work done when a step reads


@dataclass
class Counter:
    seconds: float = 0.0
    cpu: float = 0.0
    calls: int = 0
    _depth: int = 0

    def clear(self) -> None:
        self.seconds, self.cpu, self.calls = 0.0, 0.0, 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.cpu += time.process_time() - cpu
                self.calls += 1
                self._depth -= 1

        return timed


@dataclass
class Timers:
    """The counters of one benchmark: model forward (body and head), index, scorer."""

    forward: Counter
    index: Counter
    scoring: Counter

    def clear(self) -> None:
        for counter in (self.forward, self.index, self.scoring):
            counter.clear()


@contextmanager
def patched(target: Any, names: tuple[str, ...], counter: Counter) -> Iterator[Counter]:
    """Wrap `target`'s methods (a class, or one object) while the block runs."""
    saved = {name: target.__dict__.get(name) for name in names if hasattr(target, name)}
    for name in saved:
        setattr(target, name, counter.wrap(getattr(target, name)))
    try:
        yield counter
    finally:
        for name, original in saved.items():
            if original is None:
                delattr(target, name)  # was inherited or bound: drop the instance attribute
            else:
                setattr(target, name, original)
