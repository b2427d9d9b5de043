"""What the decoder, the retrieval and the training targets ask of a corpus index.

CorpusIndex (one suffix array) and ShardedIndex (one per shard, answers merged) both
satisfy TokenIndex, so callers annotate with it and never look at an index's insides.
Search states are opaque to callers: each index makes and reads its own (a CorpusIndex
state is one suffix-array range, a ShardedIndex state one range per shard), and callers
only ask how often the prefix occurs. A state is meaningful only to the index that made it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike


class IndexState(Protocol):
    """One prefix's search state, as callers see it."""

    @property
    def depth(self) -> int: ...

    @property
    def count(self) -> int: ...

    @property
    def alive(self) -> bool: ...


class IndexStates(Protocol):
    """A batch of states, as `extend` returns them (indexing gives one state)."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Any: ...

    @property
    def counts(self) -> np.ndarray: ...

    @property
    def alive(self) -> np.ndarray: ...


class TokenIndex(Protocol):
    """Queries over token ids in global corpus positions and global document numbers.

    State arguments are typed Any: they must come from the same index (see module doc).
    `extend` takes one state (tried with every token id), a batch, or a sequence of states.
    """

    tokenizer_fingerprint: str
    backend: str

    @property
    def n_tokens(self) -> int: ...

    @property
    def n_docs(self) -> int: ...

    @property
    def doc_offsets(self) -> np.ndarray: ...

    @property
    def doc_ids(self) -> np.ndarray: ...

    def root(self) -> Any: ...

    def state(self, prefix: ArrayLike) -> Any: ...

    def extend(self, states: Any, token_ids: ArrayLike) -> Any: ...

    def continuations(self, state: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def positions(self, state: Any) -> np.ndarray: ...

    def positions_and_docs(self, state: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def positions_with_next(self, state: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def window_counts(self, state: Any, starts: ArrayLike, ends: ArrayLike) -> np.ndarray: ...

    def count(self, pattern: ArrayLike) -> int: ...

    def next_tokens(self, prefix: ArrayLike) -> tuple[np.ndarray, np.ndarray]: ...

    def locate(self, pattern: ArrayLike) -> np.ndarray: ...

    def doc_of(self, positions: ArrayLike) -> np.ndarray: ...

    def extract(self, start: int, end: int) -> np.ndarray: ...

    def restrict(self, doc_indices: ArrayLike) -> TokenIndex: ...


class SpanSource(Protocol):
    """What a restricted view asks of the index it came from: the corpus text."""

    def extract(self, start: int, end: int) -> np.ndarray: ...
