"""On-disk format of a corpus index: a folder of .npy files plus meta.json.

Loading memory-maps the arrays, so it costs a few page reads whatever the corpus size and
several processes share one copy of the index in the page cache. meta.json records every
file's exact size (and sha256), so truncation is caught from the file system alone;
`verify=True` also re-hashes the contents.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from retrollm.artifacts import atomic_dir
from retrollm.index.build import SearchArrays

FORMAT = "retrollm-corpus-index"
FORMAT_VERSION = 1
META = "meta.json"
TOKENS = "tokens.npy"
SUFFIX_ARRAY = "suffix_array.npy"
DOC_OFFSETS = "doc_offsets.npy"
FIRST_IDS = "first_ids.npy"
FIRST_STARTS = "first_starts.npy"
FOLLOW_STARTS = "follow_starts.npy"
FOLLOW_IDS = "follow_ids.npy"
FOLLOW_COUNTS = "follow_counts.npy"
ALL_FILES = {TOKENS, SUFFIX_ARRAY, DOC_OFFSETS, FIRST_IDS, FIRST_STARTS}
ALL_FILES |= {FOLLOW_STARTS, FOLLOW_IDS, FOLLOW_COUNTS}


class IndexLoadError(ValueError):
    """An index folder is missing, truncated, corrupt, or built for another tokenizer."""


def save_arrays(
    path: Path, arrays: SearchArrays, doc_offsets: np.ndarray, fingerprint: str, backend: str
) -> None:
    """Write into a temporary sibling folder and rename it, so no half index is ever seen."""
    with atomic_dir(Path(path)) as tmp:
        payload = {
            TOKENS: arrays.tokens,
            SUFFIX_ARRAY: arrays.sa_words,
            DOC_OFFSETS: doc_offsets,
            FIRST_IDS: arrays.first_ids,
            FIRST_STARTS: arrays.first_starts,
            FOLLOW_STARTS: arrays.follow_starts,
            FOLLOW_IDS: arrays.follow_ids,
            FOLLOW_COUNTS: arrays.follow_counts,
        }
        for name, array in payload.items():
            np.save(tmp / name, np.ascontiguousarray(array))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "token_dtype": arrays.tokens.dtype.name,
            "separator": arrays.separator,
            "sa_bits": arrays.sa_bits,
            "n_tokens": arrays.n_suffixes,
            "n_docs": int(doc_offsets.shape[0] - 1),
            "n_positions": int(arrays.tokens.shape[0]),
            "n_distinct_tokens": int(arrays.first_ids.shape[0]),
            "n_follow": int(arrays.follow_ids.shape[0]),
            "follow_count_dtype": arrays.follow_counts.dtype.name,
            "tokenizer_fingerprint": fingerprint,
            "backend": backend,
            "files": {name: _describe(tmp / name) for name in payload},
        }
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_arrays(
    path: Path, expected_fingerprint: str | None, verify: bool
) -> tuple[SearchArrays, np.ndarray, dict[str, Any]]:
    """Memory-map a saved index after checking meta.json, file sizes and array shapes."""
    path = Path(path)
    meta = _read_meta(path)
    if expected_fingerprint is not None and meta["tokenizer_fingerprint"] != expected_fingerprint:
        raise IndexLoadError(
            f"{path / META}: index was built for tokenizer {meta['tokenizer_fingerprint']!r}, "
            f"expected {expected_fingerprint!r}"
        )
    for name, described in meta["files"].items():
        _check_file(path / name, described, verify)
    n_positions, n_tokens, n_docs = meta["n_positions"], meta["n_tokens"], meta["n_docs"]
    n_first = meta["n_distinct_tokens"]
    tokens = _map(path / TOKENS, meta["token_dtype"], (n_positions,))
    words = _map(path / SUFFIX_ARRAY, "uint64", ((n_tokens * meta["sa_bits"] + 63) // 64 + 1,))
    offsets = np.array(_map(path / DOC_OFFSETS, "int64", (n_docs + 1,)))
    first_ids = np.array(_map(path / FIRST_IDS, "int64", (n_first,)))
    first_starts = np.array(_map(path / FIRST_STARTS, "int64", (n_first + 1,)))
    follow_starts = np.array(_map(path / FOLLOW_STARTS, "int64", (n_first + 1,)))
    n_follow = meta["n_follow"]
    follow_ids = _map(path / FOLLOW_IDS, meta["token_dtype"], (n_follow,))
    follow_counts = _map(path / FOLLOW_COUNTS, meta["follow_count_dtype"], (n_follow,))
    separator = int(meta["separator"])
    consistent = (
        offsets[0] == 0
        and offsets[-1] == n_tokens
        and bool(np.all(offsets[1:] >= offsets[:-1]))
        and n_positions == n_tokens + n_docs
        and first_starts[-1] == n_tokens
        and follow_starts[-1] == n_follow
        and (n_positions == 0 or int(tokens[-1]) == separator)
    )
    if not consistent:
        raise IndexLoadError(f"{path}: index arrays are inconsistent with {META} (corrupt index)")
    arrays = SearchArrays(
        tokens, words, int(meta["sa_bits"]), n_tokens, separator, first_ids, first_starts,
        follow_starts, follow_ids, follow_counts,
    )  # fmt: skip
    return arrays, offsets, meta


def _describe(file: Path) -> dict[str, Any]:
    return {"bytes": file.stat().st_size, "sha256": _sha256(file)}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise IndexLoadError(f"{meta_file}: no index here (meta file missing)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexLoadError(f"{meta_file}: unreadable index meta ({error})") from error
    required = {
        "format", "format_version", "token_dtype", "separator", "sa_bits", "n_tokens",
        "n_docs", "n_positions", "n_distinct_tokens", "n_follow", "follow_count_dtype",
        "tokenizer_fingerprint", "files",
    }  # fmt: skip
    if not isinstance(meta, dict) or not required <= meta.keys():
        raise IndexLoadError(f"{meta_file}: not a corpus index meta file (fields missing)")
    if meta["format"] != FORMAT or meta["format_version"] != FORMAT_VERSION:
        raise IndexLoadError(
            f"{meta_file}: unsupported index format {meta['format']!r} "
            f"version {meta['format_version']!r} (this code reads {FORMAT} v{FORMAT_VERSION})"
        )
    if set(meta["files"]) != ALL_FILES:
        raise IndexLoadError(f"{meta_file}: file list does not match the index format")
    return meta


def _check_file(file: Path, described: dict[str, Any], verify: bool) -> None:
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise IndexLoadError(f"{file}: index file missing") from None
    if size != described["bytes"]:
        raise IndexLoadError(
            f"{file}: {size} bytes on disk, {described['bytes']} expected (truncated or corrupt)"
        )
    if verify and _sha256(file) != described["sha256"]:
        raise IndexLoadError(f"{file}: contents do not match the recorded sha256 (corrupt)")


def _map(file: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Memory-map one array and check it is the array meta.json promised."""
    empty = int(np.prod(shape)) == 0  # a zero-length region cannot be memory-mapped
    try:
        array = np.load(file, mmap_mode=None if empty else "r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise IndexLoadError(f"{file}: not a readable .npy array ({error})") from error
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise IndexLoadError(
            f"{file}: holds {array.dtype}{array.shape}, expected {dtype}{shape} (corrupt)"
        )
    # A plain read-only ndarray view: numba dispatches it on its fast path (np.memmap, a
    # subclass, is slower to dispatch) and the mapping stays alive through .base.
    view = array.view(np.ndarray)
    view.setflags(write=False)
    return view
