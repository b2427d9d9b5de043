"""Search states of a sharded index: one suffix-array range per shard, one depth.

The prefix's occurrences are the union of its occurrences in every shard, so a state is
the tuple of the shards' ranges (a shard where the prefix does not occur holds an empty
one). Extending narrows each range inside its own shard, never across shards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrollm.index.state import State


@dataclass(frozen=True, slots=True)
class ShardedState:
    """One prefix in a sharded index; immutable and hashable like State."""

    lo: tuple[int, ...]
    hi: tuple[int, ...]
    depth: int

    @classmethod
    def of_shards(cls, states: Sequence[State], depth: int) -> ShardedState:
        return cls(tuple(s.lo for s in states), tuple(s.hi for s in states), depth)

    def shard(self, s: int) -> State:
        """The prefix's state in shard s."""
        return State(self.lo[s], self.hi[s], self.depth)

    def alive_shards(self) -> list[int]:
        """Shards where the prefix occurs, ascending (the only ones worth asking)."""
        return [s for s, (lo, hi) in enumerate(zip(self.lo, self.hi, strict=True)) if hi > lo]

    @property
    def count(self) -> int:
        """Occurrences of the prefix over all shards."""
        return sum(max(0, hi - lo) for lo, hi in zip(self.lo, self.hi, strict=True))

    @property
    def alive(self) -> bool:
        return any(hi > lo for lo, hi in zip(self.lo, self.hi, strict=True))


@dataclass(frozen=True, slots=True)
class ShardedStateBatch:
    """Many sharded states: lo and hi are (shards, batch) int64, depth is (batch,).

    Shard-major, so each shard's ranges are one contiguous row: the kernels take it as is.
    """

    lo: np.ndarray
    hi: np.ndarray
    depth: np.ndarray

    def __post_init__(self) -> None:
        for name in ("lo", "hi", "depth"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        if self.lo.ndim != 2 or self.lo.shape != self.hi.shape:
            raise ValueError("ShardedStateBatch lo and hi must be (shards, batch) arrays")
        if self.depth.shape != self.lo.shape[1:]:
            raise ValueError("ShardedStateBatch depth must have one entry per state")

    @classmethod
    def of(cls, states: Sequence[ShardedState], n_shards: int) -> ShardedStateBatch:
        shape = (len(states), n_shards)
        lo = np.array([s.lo for s in states], dtype=np.int64).reshape(shape).T
        hi = np.array([s.hi for s in states], dtype=np.int64).reshape(shape).T
        depth = np.array([s.depth for s in states], dtype=np.int64)
        return cls(np.ascontiguousarray(lo), np.ascontiguousarray(hi), depth)

    @classmethod
    def repeat(cls, state: ShardedState, size: int) -> ShardedStateBatch:
        """The same state `size` times: one prefix tried with many candidate next tokens."""
        lo = np.repeat(np.asarray(state.lo, dtype=np.int64)[:, None], size, axis=1)
        hi = np.repeat(np.asarray(state.hi, dtype=np.int64)[:, None], size, axis=1)
        return cls(lo, hi, np.full(size, state.depth, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def __getitem__(self, i: int) -> ShardedState:
        return ShardedState(
            tuple(self.lo[:, i].tolist()), tuple(self.hi[:, i].tolist()), int(self.depth[i])
        )

    @property
    def counts(self) -> np.ndarray:
        return np.maximum(self.hi - self.lo, 0).sum(axis=0)

    @property
    def alive(self) -> np.ndarray:
        return self.counts > 0
