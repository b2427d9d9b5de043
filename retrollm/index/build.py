"""Turning token ids and document offsets into the arrays the index queries.

The arrays: the tokens with a separator after every document, the suffix array of the
real (non-separator) suffixes bit-packed to ceil(log2 N) bits, and the unigram table (every
distinct id with the start of its suffix-array block), which answers the root's
continuations and first step without touching the suffix array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrollm.index import kernels
from retrollm.index.suffix_array import BACKENDS, token_suffix_array

# The follow cache may use this much disk per corpus token, on one-token prefixes seen at
# least FOLLOW_CACHE_MIN_COUNT times (below that, galloping takes well under a millisecond).
FOLLOW_CACHE_BYTES_PER_TOKEN = 0.25
FOLLOW_CACHE_MIN_COUNT = 4096

SMALL_INPUT_BACKEND = "pysais"

# Stored token widths; the separator is the largest value of the chosen one. No uint8:
# LLM vocabularies never fit it, and each width is one more set of compiled kernels.
TOKEN_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.uint16), np.dtype(np.uint32))


@dataclass(frozen=True, slots=True)
class SearchArrays:
    """What a suffix-array search needs, for the whole corpus or for a sub-index."""

    tokens: np.ndarray  # separator layout, uint16/32
    sa_words: np.ndarray  # uint64, bit-packed suffix array of the real suffixes
    sa_bits: int
    n_suffixes: int  # real tokens = suffix-array entries
    separator: int
    first_ids: np.ndarray  # int64, ascending distinct ids
    first_starts: np.ndarray  # int64, len(first_ids) + 1 block starts
    # Continuations of the most frequent one-token prefixes, precomputed (see follow_cache).
    follow_starts: np.ndarray  # int64, len(first_ids) + 1; an empty slice = not cached
    follow_ids: np.ndarray  # token dtype
    follow_counts: np.ndarray  # uint32 (int64 beyond 2**32 tokens)


def storage_dtype(max_id: int) -> np.dtype:
    """Narrowest dtype that still has a value above every id left for the separator."""
    for dtype in TOKEN_DTYPES:
        if max_id < np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"token id {max_id} is too large: ids must be below {2**32 - 1}")


def check_inputs(tokens: np.ndarray, doc_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate corpus arrays up front so a bad input fails with a message, not a crash."""
    tokens = np.asarray(tokens)
    offsets = np.asarray(doc_offsets)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D integer array, got {tokens.dtype}{tokens.shape}")
    if offsets.ndim != 1 or offsets.size < 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError("doc_offsets must be a 1-D integer array of n_docs + 1 entries")
    offsets = offsets.astype(np.int64, copy=False)
    if offsets[0] != 0 or offsets[-1] != tokens.shape[0]:
        raise ValueError(
            f"doc_offsets must start at 0 and end at len(tokens)={tokens.shape[0]}, "
            f"got {offsets[0]}..{offsets[-1]}"
        )
    if np.any(offsets[1:] < offsets[:-1]):
        raise ValueError("doc_offsets must be non-decreasing")
    if tokens.size and np.issubdtype(tokens.dtype, np.signedinteger) and tokens.min() < 0:
        raise ValueError("token ids must be non-negative")
    return tokens, offsets


def search_arrays(
    layout: np.ndarray,
    n_real: int,
    separator: int,
    max_id: int,
    backend: str,
    cache_bytes_per_token: float = 0.0,
) -> SearchArrays:
    """Sort, pack and tabulate a separator-layout token array."""
    sa = token_suffix_array(layout, separator, max_id, backend)
    n_positions = int(layout.shape[0])
    # The separator is the largest symbol, so separator suffixes are the tail: drop them.
    if n_real < n_positions and layout[sa[n_real]] != separator:
        raise RuntimeError("suffix array does not end with the separator suffixes")
    bits = max(1, (n_positions - 1).bit_length())
    words = kernels.pack_bits(sa[:n_real], bits)
    del sa
    layout = _read_only(layout)
    words = _read_only(words)
    ids, counts = kernels.continuations(words, bits, layout, 0, n_real, 0, separator)
    starts = np.zeros(ids.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    follow = follow_cache(layout, words, bits, separator, starts, cache_bytes_per_token)
    return SearchArrays(layout, words, bits, n_real, separator, ids, starts, *follow)


def follow_cache(
    layout: np.ndarray,
    words: np.ndarray,
    bits: int,
    separator: int,
    first_starts: np.ndarray,
    bytes_per_token: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuations of the most frequent one-token prefixes, within a disk budget.

    Listing what follows a very frequent token costs one random read per distinct
    follower (tens of milliseconds for a token with 30k of them), and a clue starting
    with such a token hits exactly that on its second step. Caching the biggest ones
    turns the worst decode steps into a copy.
    """
    n_real = int(first_starts[-1])
    count_dtype = np.dtype(np.uint32 if n_real < 2**32 else np.int64)
    entry_bytes = layout.dtype.itemsize + count_dtype.itemsize
    budget = int(n_real * bytes_per_token / entry_bytes)
    first_counts = np.diff(first_starts)
    cached: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j in np.argsort(-first_counts, kind="stable") if budget > 0 else ():
        if first_counts[j] < FOLLOW_CACHE_MIN_COUNT:
            break
        ids, counts = kernels.continuations(
            words, bits, layout, first_starts[j], first_starts[j + 1], 1, separator
        )
        if budget < ids.shape[0]:
            break
        budget -= ids.shape[0]
        cached[int(j)] = (ids, counts)
    lengths = np.zeros(first_counts.shape[0], dtype=np.int64)
    for j, (ids, _) in cached.items():
        lengths[j] = ids.shape[0]
    starts = np.zeros(first_counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    in_id_order = [cached[j] for j in sorted(cached)]
    none = np.zeros(0, dtype=np.int64)
    ids_out = np.concatenate([ids for ids, _ in in_id_order] or [none])
    counts_out = np.concatenate([counts for _, counts in in_id_order] or [none])
    return (
        _read_only(starts),
        _read_only(ids_out.astype(layout.dtype)),
        _read_only(counts_out.astype(count_dtype)),
    )


def build_corpus_arrays(
    tokens: np.ndarray, doc_offsets: np.ndarray, backend: str
) -> tuple[SearchArrays, np.ndarray]:
    """Everything a full index stores; returns (search arrays, int64 doc offsets)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown suffix-array backend {backend!r}; choose one of {BACKENDS}")
    tokens, offsets = check_inputs(tokens, doc_offsets)
    max_id = int(tokens.max()) if tokens.size else 0
    dtype = storage_dtype(max_id)
    separator = int(np.iinfo(dtype).max)
    layout = np.full(tokens.shape[0] + offsets.shape[0] - 1, separator, dtype=dtype)
    is_token = np.ones(layout.shape[0], dtype=bool)
    is_token[offsets[1:] + np.arange(offsets.shape[0] - 1)] = False  # each document's end
    layout[is_token] = tokens
    del is_token
    arrays = search_arrays(
        layout, int(tokens.shape[0]), separator, max_id, backend, FOLLOW_CACHE_BYTES_PER_TOKEN
    )
    return arrays, offsets


def build_sub_arrays(
    parent: SearchArrays, doc_starts_local: np.ndarray, chosen_local: np.ndarray
) -> tuple[SearchArrays, np.ndarray]:
    """Search arrays over some documents of `parent` (and their starts in the new layout).

    Always sorted with pysais: libdivsufsort (in pydivsufsort) runs under OpenMP, whose
    thread start-up costs ~20 ms per call on a busy 2-core machine against 0.2 ms for the
    whole sort of a few thousand tokens; both give the same suffix array (tested).
    """
    return build_gathered_arrays([(parent, doc_starts_local, chosen_local)])


def build_gathered_arrays(
    parts: Sequence[tuple[SearchArrays, np.ndarray, np.ndarray]],
) -> tuple[SearchArrays, np.ndarray]:
    """Search arrays over chosen documents of several parents, in the order given.

    Each part is (parent arrays, its doc_starts_local, chosen local documents). Parents
    may store tokens at different widths (shards indexed apart); the gathered layout uses
    the widest, with that width's separator, which keeps every id's order.
    """
    dtype = max((p.tokens.dtype for p, _, _ in parts), key=lambda d: d.itemsize)
    separator = int(np.iinfo(dtype).max)
    layouts, starts, at = [], [np.zeros(1, dtype=np.int64)], 0
    for parent, doc_starts_local, chosen in parts:
        layout, local = kernels.gather_documents(parent.tokens, doc_starts_local, chosen)
        if layout.dtype != dtype:
            ends = layout == parent.separator
            layout = layout.astype(dtype)
            layout[ends] = separator
        layouts.append(layout)
        starts.append(local[1:] + at)
        at += int(layout.shape[0])
    n_chosen = sum(int(chosen.shape[0]) for _, _, chosen in parts)
    layout = layouts[0] if len(layouts) == 1 else np.concatenate(layouts)
    n_real = int(layout.shape[0] - n_chosen)
    arrays = search_arrays(layout, n_real, separator, separator - 1, SMALL_INPUT_BACKEND)
    return arrays, np.concatenate(starts)


def _read_only(array: np.ndarray) -> np.ndarray:
    """Read-only view: memory-mapped and freshly built arrays then share compiled kernels."""
    view = array.view()
    view.setflags(write=False)
    return view
