"""Numba kernels over (bit-packed suffix array, token array) for the index queries.

Everything that touches the suffix array lives in this one file on purpose: numba's
on-disk cache only notices edits to the file a function is defined in, so a helper in
another module could leave stale inlined copies behind.

Token array layout: every document is followed by one separator, a value above every real
id, so a match can never run across a document end and "the document ended" is simply the
last (largest) block of any range. Suffix-array entries are positions in that layout.
"""

from __future__ import annotations

import numba
import numpy as np

_U1 = np.uint64(1)


def packed_words(n_values: int, bits: int) -> int:
    """uint64 words for n values of `bits` bits, plus one so two-word reads stay in bounds."""
    return (n_values * bits + 63) // 64 + 1


@numba.njit(cache=True)
def pack_bits(values, bits):
    """Pack non-negative ints below 2**bits into a uint64 array, `bits` bits each.

    ceil(log2(N)) bits per entry is what keeps the index under 6 bytes per token with a
    16-bit vocabulary (int32 alone would use 4 of them for the suffix array).
    """
    n = values.shape[0]
    words = np.zeros((n * bits + 63) // 64 + 1, dtype=np.uint64)
    for i in range(n):
        value = np.uint64(values[i])
        bit_pos = i * bits
        word = bit_pos >> 6
        offset = bit_pos & 63
        words[word] |= value << np.uint64(offset)
        if offset + bits > 64:
            words[word + 1] |= value >> np.uint64(64 - offset)
    return words


@numba.njit(cache=True, inline="always")
def sa_value(words, bits, i):
    bit_pos = i * bits
    word = bit_pos >> 6
    offset = bit_pos & 63
    value = words[word] >> np.uint64(offset)
    if offset + bits > 64:
        value |= words[word + 1] << np.uint64(64 - offset)
    return np.int64(value & ((_U1 << np.uint64(bits)) - _U1))


@numba.njit(cache=True)
def unpack_range(words, bits, lo, hi):
    out = np.empty(hi - lo, dtype=np.int64)
    for i in range(lo, hi):
        out[i - lo] = sa_value(words, bits, i)
    return out


@numba.njit(cache=True, inline="always")
def _symbol(words, bits, tokens, i, depth):
    return np.int64(tokens[sa_value(words, bits, i) + depth])


@numba.njit(cache=True)
def _lower_bound(words, bits, tokens, lo, hi, depth, target):
    """First i in [lo, hi) whose symbol at `depth` is >= target (symbols sorted there)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if _symbol(words, bits, tokens, mid, depth) < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _narrow(words, bits, tokens, first_ids, first_starts, lo, hi, depth, token, separator):
    """Sub-range of [lo, hi) whose symbol at `depth` is `token`; (0, 0) when there is none.

    The root (depth 0) is answered from the unigram table rather than by two binary
    searches over the whole suffix array.
    """
    if hi <= lo or token < 0 or token >= separator:
        return np.int64(0), np.int64(0)
    if depth == 0:
        j = np.searchsorted(first_ids, token)
        if j < first_ids.shape[0] and first_ids[j] == token:
            return first_starts[j], first_starts[j + 1]
        return np.int64(0), np.int64(0)
    start = _lower_bound(words, bits, tokens, lo, hi, depth, token)
    end = _lower_bound(words, bits, tokens, start, hi, depth, token + 1)
    if end == start:
        return np.int64(0), np.int64(0)
    return start, end


@numba.njit(cache=True)
def extend_batch(words, bits, tokens, first_ids, first_starts, lo, hi, depth, token_ids, separator):
    """Narrow every state k of a batch by token_ids[k]; dead states stay dead."""
    m = lo.shape[0]
    out_lo = np.empty(m, dtype=np.int64)
    out_hi = np.empty(m, dtype=np.int64)
    for k in range(m):
        out_lo[k], out_hi[k] = _narrow(
            words,
            bits,
            tokens,
            first_ids,
            first_starts,
            lo[k],
            hi[k],
            depth[k],
            token_ids[k],
            separator,
        )
    return out_lo, out_hi


@numba.njit(cache=True)
def descend(words, bits, tokens, first_ids, first_starts, n, pattern, separator):
    """Range of a whole pattern from the root, in one call."""
    lo = np.int64(0)
    hi = np.int64(n)
    for depth in range(pattern.shape[0]):
        lo, hi = _narrow(
            words,
            bits,
            tokens,
            first_ids,
            first_starts,
            lo,
            hi,
            np.int64(depth),
            pattern[depth],
            separator,
        )
        if hi == lo:
            break
    return lo, hi


@numba.njit(cache=True)
def continuations(words, bits, tokens, lo, hi, depth, separator):
    """Distinct next symbols of a range with their counts, ascending, separator excluded.

    Each block is found by galloping (probe +1, +2, +4, ... then bisect), so the cost is
    about (distinct symbols) x log(block size) probes: a one-token block costs one probe
    and a huge block a few dozen, instead of scanning every occurrence.
    """
    capacity = 16
    ids = np.empty(capacity, dtype=np.int64)
    counts = np.empty(capacity, dtype=np.int64)
    found = 0
    i = lo
    while i < hi:
        symbol = _symbol(words, bits, tokens, i, depth)
        if symbol == separator:
            break
        known = i  # last index known to hold `symbol`
        step = 1
        probe = i + 1
        while probe < hi and _symbol(words, bits, tokens, probe, depth) == symbol:
            known = probe
            step <<= 1
            probe = i + step
        end = _lower_bound(words, bits, tokens, known + 1, min(probe, hi), depth, symbol + 1)
        if found == capacity:
            capacity <<= 1
            ids = np.resize(ids, capacity)
            counts = np.resize(counts, capacity)
        ids[found] = symbol
        counts[found] = end - i
        found += 1
        i = end
    return ids[:found].copy(), counts[:found].copy()


@numba.njit(cache=True)
def to_global(positions, doc_starts_local, doc_starts_global):
    """Map separator-layout positions to corpus positions (and their local documents)."""
    docs = np.searchsorted(doc_starts_local, positions, side="right") - 1
    out = np.empty(positions.shape[0], dtype=np.int64)
    for k in range(positions.shape[0]):
        d = docs[k]
        out[k] = doc_starts_global[d] + positions[k] - doc_starts_local[d]
    return out, docs


@numba.njit(cache=True)
def gather_documents(tokens, doc_starts_local, chosen):
    """Concatenate chosen documents, each with its trailing separator, for a sub-index."""
    total = 0
    for c in chosen:
        total += doc_starts_local[c + 1] - doc_starts_local[c]
    out = np.empty(total, dtype=tokens.dtype)
    starts = np.empty(chosen.shape[0] + 1, dtype=np.int64)
    pos = 0
    for k in range(chosen.shape[0]):
        c = chosen[k]
        starts[k] = pos
        length = doc_starts_local[c + 1] - doc_starts_local[c]
        out[pos : pos + length] = tokens[doc_starts_local[c] : doc_starts_local[c + 1]]
        pos += length
    starts[chosen.shape[0]] = pos
    return out, starts
