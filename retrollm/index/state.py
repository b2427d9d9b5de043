"""Search states: what a decoder keeps per hypothesis between steps.

A state is the suffix-array range [lo, hi) of every occurrence of a prefix plus the prefix
length. Extending it by one token only narrows the range, so a decoder never re-searches
the whole prefix; an empty range means the prefix does not occur (the hypothesis is dead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class State:
    """One prefix in the index. Immutable and tiny, so beams can share and copy it freely.

    Ranges are only meaningful for the index that made them (a restricted view has its
    own suffix array)."""

    lo: int
    hi: int
    depth: int

    @property
    def count(self) -> int:
        """Occurrences of the prefix (0 once the hypothesis left the corpus)."""
        return self.hi - self.lo

    @property
    def alive(self) -> bool:
        return self.hi > self.lo


@dataclass(frozen=True, slots=True)
class StateBatch:
    """Many states as parallel int64 arrays, so one kernel call advances a whole batch."""

    lo: np.ndarray
    hi: np.ndarray
    depth: np.ndarray

    def __post_init__(self) -> None:
        # One dtype for the kernels (any other would compile another specialisation).
        for name in ("lo", "hi", "depth"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        if not (self.lo.shape == self.hi.shape == self.depth.shape) or self.lo.ndim != 1:
            raise ValueError("StateBatch arrays must be 1-D and of equal length")

    @classmethod
    def of(cls, states: Sequence[State]) -> StateBatch:
        return cls(
            np.array([s.lo for s in states], dtype=np.int64),
            np.array([s.hi for s in states], dtype=np.int64),
            np.array([s.depth for s in states], dtype=np.int64),
        )

    @classmethod
    def repeat(cls, state: State, size: int) -> StateBatch:
        """The same state `size` times: one prefix tried with many candidate next tokens."""
        return cls(
            np.full(size, state.lo, dtype=np.int64),
            np.full(size, state.hi, dtype=np.int64),
            np.full(size, state.depth, dtype=np.int64),
        )

    def __len__(self) -> int:
        return int(self.lo.shape[0])

    def __getitem__(self, i: int) -> State:
        return State(int(self.lo[i]), int(self.hi[i]), int(self.depth[i]))

    @property
    def counts(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def alive(self) -> np.ndarray:
        return self.hi > self.lo
