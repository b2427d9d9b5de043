"""Token suffix arrays from byte-oriented suffix sorters (pydivsufsort, pysais).

Both libraries sort byte strings. Token ids are written as fixed-width big-endian bytes:
comparing two such strings from offsets that are multiples of the width compares the token
sequences, so the token suffix array is the byte suffix array with the unaligned entries
dropped and the survivors divided by the width. Both backends go through this one path,
which is what makes their indexes byte-identical.

Memory (the build's peak): the encoded bytes (width x N) plus the byte suffix array
(4 x width x N, int32 up to 2**31 bytes); alignment filtering happens in place.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np

Backend = Literal["pydivsufsort", "pysais"]
BACKENDS: tuple[str, ...] = ("pydivsufsort", "pysais")


def encoding_width(max_symbol: int) -> int:
    """Bytes per token such that every id stays below the all-0xFF separator code."""
    width = 1
    while max_symbol >= (1 << (8 * width)) - 1:
        width += 1
    return width


@numba.njit(cache=True)
def _encode_big_endian(tokens, separator, width):
    """Big-endian fixed-width bytes; the separator becomes all 0xFF, above every real id."""
    n = tokens.shape[0]
    out = np.empty(n * width, dtype=np.uint8)
    for i in range(n):
        value = np.int64(tokens[i])
        if value == separator:
            value = (np.int64(1) << (8 * width)) - 1
        for b in range(width):
            out[i * width + b] = (value >> (8 * (width - 1 - b))) & 0xFF
    return out


@numba.njit(cache=True)
def _keep_aligned(byte_sa, width):
    """Compact aligned entries to the front (in place) as token positions; return count."""
    kept = 0
    for i in range(byte_sa.shape[0]):
        position = byte_sa[i]
        if position % width == 0:
            byte_sa[kept] = position // width
            kept += 1
    return kept


def _sort_bytes(holder: list[np.ndarray], backend: str) -> np.ndarray:
    """Suffix array of the uint8 array in `holder`, which is emptied so the encoded copy
    can be freed before the sort allocates (pysais needs it as a bytes object)."""
    data = holder.pop()
    if backend == "pydivsufsort":
        from pydivsufsort import divsufsort

        return divsufsort(data)
    from PySAIS._sais import sais_32, sais_64

    raw = data.tobytes()
    del data
    return sais_32(raw) if len(raw) < 2**30 else sais_64(raw)


def token_suffix_array(
    tokens: np.ndarray, separator: int, max_symbol: int, backend: str
) -> np.ndarray:
    """Suffix array (int32 or int64, length len(tokens)) of a token sequence.

    `max_symbol` is the largest id other than `separator` (the caller knows it, so no
    scan or copy here); the separator is encoded as the largest code of the chosen width
    so that the library sees the same order.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown suffix-array backend {backend!r}; choose one of {BACKENDS}")
    n = int(tokens.shape[0])
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    width = encoding_width(max_symbol)
    byte_sa = _sort_bytes([_encode_big_endian(tokens, np.int64(separator), width)], backend)
    if width == 1:
        return byte_sa
    kept = _keep_aligned(byte_sa, width)
    if kept != n:
        raise RuntimeError(f"suffix sorter returned {kept} aligned suffixes, expected {n}")
    return byte_sa[:n]
