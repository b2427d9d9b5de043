"""ShardedIndex: one query API over several CorpusIndex shards (docs/design.md §5).

Each shard indexes a contiguous run of documents, so a global position or document number
is the shard's own plus the shard's start, and answers merge simply: counts add up,
positions concatenate in shard order (already ascending), next-token lists are summed
per id. The answers equal those of one CorpusIndex over the same documents (tested).

A restriction copies the chosen documents, from whichever shards hold them, into one
small sub-index, so an evidence step costs the same whatever the shard count; it is a
plain restricted CorpusIndex view whose extracts come back here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from retrollm.artifacts import atomic_dir
from retrollm.index.build import build_gathered_arrays
from retrollm.index.core import CorpusIndex, _as_ids
from retrollm.index.sharded_state import ShardedState, ShardedStateBatch
from retrollm.index.shards import ShardEntry, read_manifest, shard_folder, write_manifest
from retrollm.index.state import StateBatch
from retrollm.index.storage import IndexLoadError

_EMPTY_IDS = np.zeros(0, dtype=np.int64)


class ShardedIndex:
    """Shards of one corpus in corpus order; built with build_sharded, or `load`ed."""

    def __init__(self, shards: Sequence[CorpusIndex]) -> None:
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        fingerprints = {s.tokenizer_fingerprint for s in shards}
        if len(fingerprints) > 1:
            raise ValueError(f"shards made by different tokenizers: {sorted(fingerprints)}")
        if any(s.n_docs != s.doc_offsets.shape[0] - 1 for s in shards):
            raise ValueError("a shard must be a full index, not a restricted view")
        self.shards = list(shards)
        self.tokenizer_fingerprint = shards[0].tokenizer_fingerprint
        self.backend = shards[0].backend
        self._doc_starts = _starts([s.n_docs for s in shards])
        self._token_starts = _starts([s.n_tokens for s in shards])
        starts = self._token_starts[:-1]
        pieces = [s.doc_offsets[:-1] + t for s, t in zip(shards, starts, strict=True)]
        self._doc_offsets = np.concatenate([*pieces, self._token_starts[-1:]])
        self._doc_offsets.setflags(write=False)
        self._root_continuations: tuple[np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def load(
        cls,
        path: str | Path,
        expected_tokenizer_fingerprint: str | None = None,
        verify: bool = False,
    ) -> ShardedIndex:
        """Memory-map every shard listed in shards.json (see CorpusIndex.load); raises
        IndexLoadError naming the file when a shard is missing, corrupt, from another
        tokenizer, or not the size the manifest says."""
        path = Path(path)
        entries, manifest = read_manifest(path)
        expected = expected_tokenizer_fingerprint
        if expected is not None and manifest["tokenizer_fingerprint"] != expected:
            raise IndexLoadError(
                f"{path}: index was built for tokenizer {manifest['tokenizer_fingerprint']!r}, "
                f"expected {expected!r}"
            )
        shards = []
        for entry in entries:
            shard = CorpusIndex.load(path / entry.folder, manifest["tokenizer_fingerprint"], verify)
            if (shard.n_docs, shard.n_tokens) != (entry.n_docs, entry.n_tokens):
                raise IndexLoadError(
                    f"{path / entry.folder}: holds {shard.n_docs} documents and "
                    f"{shard.n_tokens} tokens, the manifest says {entry.n_docs} and "
                    f"{entry.n_tokens}"
                )
            shards.append(shard)
        return cls(shards)

    def save(self, path: str | Path) -> None:
        """Write the shard folders and shards.json atomically."""
        with atomic_dir(Path(path)) as tmp:
            entries = []
            for k, shard in enumerate(self.shards):
                shard.save(tmp / shard_folder(k))
                entries.append(self._entry(k))
            write_manifest(tmp, entries, self.tokenizer_fingerprint, self.backend)

    def _entry(self, k: int) -> ShardEntry:
        return ShardEntry(
            shard_folder(k),
            int(self._doc_starts[k]),
            self.shards[k].n_docs,
            int(self._token_starts[k]),
            self.shards[k].n_tokens,
        )

    def restrict(self, doc_indices: ArrayLike) -> CorpusIndex:
        """The same queries over some documents only, from any shards (duplicates ignored);
        as CorpusIndex.restrict, in global coordinates."""
        wanted = np.unique(np.asarray(doc_indices, dtype=np.int64).reshape(-1))
        if wanted.size and (wanted[0] < 0 or wanted[-1] >= self.n_docs):
            raise ValueError("restrict: document indices outside this index")
        owner = np.searchsorted(self._doc_starts, wanted, side="right") - 1
        parts = [
            self.shards[s].gather_part(wanted[owner == s] - self._doc_starts[s])
            for s in np.unique(owner).tolist()
        ] or [self.shards[0].gather_part(_EMPTY_IDS)]
        arrays, starts = build_gathered_arrays(parts)
        return CorpusIndex(
            arrays, self._doc_offsets, wanted, starts, self.tokenizer_fingerprint, self.backend,
            parent=self,
        )  # fmt: skip

    # ------------------------------------------------------------------- properties
    @property
    def n_shards(self) -> int:
        return len(self.shards)

    @property
    def n_tokens(self) -> int:
        return int(self._token_starts[-1])

    @property
    def n_docs(self) -> int:
        return int(self._doc_starts[-1])

    @property
    def doc_offsets(self) -> np.ndarray:
        """Global document offsets of the whole corpus."""
        return self._doc_offsets

    @cached_property
    def doc_ids(self) -> np.ndarray:
        """Global indices of the covered documents: all of them."""
        return np.arange(self.n_docs, dtype=np.int64)

    @property
    def shard_doc_starts(self) -> np.ndarray:
        """Global number of each shard's first document, plus n_docs."""
        return self._doc_starts

    # -------------------------------------------------------------- incremental API
    def root(self) -> ShardedState:
        return ShardedState.of_shards([s.root() for s in self.shards], 0)

    def state(self, prefix: ArrayLike) -> ShardedState:
        pattern = _as_ids(prefix)
        return ShardedState.of_shards([s.state(pattern) for s in self.shards], pattern.shape[0])

    def extend(
        self,
        states: ShardedState | ShardedStateBatch | Sequence[ShardedState],
        token_ids: ArrayLike,
    ) -> ShardedStateBatch:
        """As CorpusIndex.extend: one kernel call per shard for the whole batch."""
        tokens = _as_ids(token_ids)
        if isinstance(states, ShardedState):
            batch = ShardedStateBatch.repeat(states, tokens.shape[0])
        elif isinstance(states, ShardedStateBatch):
            batch = states
        else:
            batch = ShardedStateBatch.of(states, self.n_shards)
        if len(batch) != tokens.shape[0]:
            raise ValueError(f"extend: {len(batch)} states but {tokens.shape[0]} token ids")
        lo = np.zeros_like(batch.lo)
        hi = np.zeros_like(batch.hi)
        live = (batch.hi > batch.lo).any(axis=1)
        for s in np.flatnonzero(live).tolist():  # a shard where all are dead stays dead
            out = self.shards[s].extend(StateBatch(batch.lo[s], batch.hi[s], batch.depth), tokens)
            lo[s], hi[s] = out.lo, out.hi
        return ShardedStateBatch(lo, hi, batch.depth + 1)

    def continuations(self, state: ShardedState) -> tuple[np.ndarray, np.ndarray]:
        """Distinct next ids (ascending, int64) with counts summed over the shards."""
        if state.depth == 0 and state.alive:
            # Every clue starts here; merging whole vocabularies per step would dominate.
            if self._root_continuations is None:
                self._root_continuations = self._merged(state)
            ids, counts = self._root_continuations
            return ids.copy(), counts.copy()
        return self._merged(state)

    def _merged(self, state: ShardedState) -> tuple[np.ndarray, np.ndarray]:
        alive = state.alive_shards()
        if not alive:
            return _EMPTY_IDS.copy(), _EMPTY_IDS.copy()
        lists = [self.shards[s].continuations(state.shard(s)) for s in alive]
        lists = [(ids, counts) for ids, counts in lists if ids.size]
        if len(lists) <= 1:  # none left: the prefix ends a document wherever it occurs
            return lists[0] if lists else (_EMPTY_IDS.copy(), _EMPTY_IDS.copy())
        ids = np.concatenate([i for i, _ in lists])
        counts = np.concatenate([c for _, c in lists])
        order = np.argsort(ids, kind="stable")
        ids, counts = ids[order], counts[order]
        first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        return ids[first], np.add.reduceat(counts, first).astype(np.int64)

    def positions(self, state: ShardedState) -> np.ndarray:
        """Global start positions of the state's prefix, ascending (int64)."""
        return self._gather(state, docs=False)[0]

    def positions_and_docs(self, state: ShardedState) -> tuple[np.ndarray, np.ndarray]:
        """Global start positions (ascending) and their global document indices."""
        return self._gather(state, docs=True)

    def positions_with_next(self, state: ShardedState) -> tuple[np.ndarray, np.ndarray]:
        """Global start positions (ascending) and the id following each (-1 at a document
        end), as CorpusIndex.positions_with_next."""
        positions, following = [], []
        for s in state.alive_shards():
            p, f = self.shards[s].positions_with_next(state.shard(s))
            positions.append(p + self._token_starts[s])
            following.append(f)
        return _joined(positions), _joined(following)

    def window_counts(self, state: ShardedState, starts: ArrayLike, ends: ArrayLike) -> np.ndarray:
        """Occurrences of the state's prefix lying wholly inside each window [start, end)."""
        positions = self.positions(state)
        first = np.searchsorted(positions, np.asarray(starts, dtype=np.int64), side="left")
        last = np.searchsorted(
            positions, np.asarray(ends, dtype=np.int64) - state.depth, side="right"
        )
        return np.maximum(last - first, 0)

    def _gather(self, state: ShardedState, docs: bool) -> tuple[np.ndarray, np.ndarray]:
        positions, owners = [], []
        for s in state.alive_shards():
            shard = self.shards[s]
            if docs:
                p, d = shard.positions_and_docs(state.shard(s))
                owners.append(d + self._doc_starts[s])
            else:
                p = shard.positions(state.shard(s))
            positions.append(p + self._token_starts[s])
        return _joined(positions), _joined(owners)

    # ------------------------------------------------------------- pattern queries
    def count(self, pattern: ArrayLike) -> int:
        """Occurrences of a token sequence inside documents (empty pattern: n_tokens)."""
        return self.state(pattern).count

    def next_tokens(self, prefix: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        return self.continuations(self.state(prefix))

    def locate(self, pattern: ArrayLike) -> np.ndarray:
        return self.positions(self.state(pattern))

    # ---------------------------------------------------------------- corpus access
    def doc_of(self, positions: ArrayLike) -> np.ndarray:
        """Global document index of each global position (int64, same shape)."""
        pos = np.asarray(positions, dtype=np.int64)
        total = self.n_tokens
        if pos.size and (pos.min() < 0 or pos.max() >= total):
            raise ValueError(f"doc_of: positions must lie in [0, {total})")
        return np.searchsorted(self._doc_offsets, pos, side="right") - 1

    def extract(self, start: int, end: int) -> np.ndarray:
        """Token ids of global positions [start, end), across documents and shards (int64)."""
        total = self.n_tokens
        if not 0 <= start <= end <= total:
            raise ValueError(f"extract: need 0 <= start <= end <= {total}, got {start}, {end}")
        if start == end:
            return _EMPTY_IDS.copy()
        # Shards are document runs, so a span cut at shard ends loses no separator.
        first = int(np.searchsorted(self._token_starts, start, side="right")) - 1
        last = int(np.searchsorted(self._token_starts, end - 1, side="right")) - 1
        pieces = []
        for s in range(first, last + 1):
            begin, stop = self._token_starts[s], self._token_starts[s + 1]
            lo, hi = max(start, begin) - begin, min(end, stop) - begin
            if hi > lo:
                pieces.append(self.shards[s].extract(int(lo), int(hi)))
        return _joined(pieces)

    def __repr__(self) -> str:
        return (
            f"<ShardedIndex {self.n_shards} shards, {self.n_tokens} tokens, {self.n_docs} docs, "
            f"backend={self.backend}, tokenizer={self.tokenizer_fingerprint!r}>"
        )


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return _EMPTY_IDS.copy()
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _starts(sizes: list[int]) -> np.ndarray:
    """Where each shard starts, plus the total (int64)."""
    out = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out
