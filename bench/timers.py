"""Wall-time counters the decode benchmark wraps around the index and the window scorer,
so it can split the time outside the forward pass without timing code in the engine.

A call that runs inside another timed call of the same counter (locate calls state and
positions) is counted once, by the outermost call.
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


@dataclass
class Counter:
    seconds: float = 0.0
    calls: int = 0
    _depth: int = 0

    def clear(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
                self._depth -= 1

        return timed


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
