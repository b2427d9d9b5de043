"""Corpus text to token ids: one flat array plus document offsets.

Documents are tokenized exactly as the decoder will see text inside evidence: no BOS/EOS,
and control tokens typed in a document (say a literal "<|sep|>") are encoded as plain
text, so the index can never offer a special token as a corpus continuation.
Ids stream to disk batch by batch, so memory stays bounded whatever the corpus size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from retrollm.artifacts import MANIFEST
from retrollm.sharding import shard_paths

TOKENS_FILE = "tokens.npy"
OFFSETS_FILE = "doc_offsets.npy"
_COPY_CHUNK = 1 << 24  # tokens per copy step from the raw stream into the .npy file


@dataclass(frozen=True)
class TokenizedCorpus:
    """What was written, for the manifest."""

    documents: int
    tokens: int
    empty_documents: int
    dtype: str
    vocab_size: int


def smallest_uint(vocab_size: int) -> np.dtype:
    """Narrowest unsigned dtype for ids below `vocab_size` (uint16 for SmolLM2's 49157)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"vocabulary of {vocab_size} does not fit in uint32")


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Plain-text ids: no added BOS/EOS, special-token strings split like ordinary text."""
    return tokenizer(
        texts,
        add_special_tokens=False,
        split_special_tokens=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]


def _write_npy(raw: Path, out: Path, dtype: np.dtype, n_tokens: int) -> None:
    """Copy the raw id stream into a .npy (its header needs the final length)."""
    if n_tokens == 0:  # an empty file cannot be memory-mapped
        np.save(out, np.zeros(0, dtype=dtype))
        return
    array = np.lib.format.open_memmap(out, mode="w+", dtype=dtype, shape=(n_tokens,))
    source = np.memmap(raw, dtype=dtype, mode="r", shape=(n_tokens,))
    for start in range(0, n_tokens, _COPY_CHUNK):
        array[start : start + _COPY_CHUNK] = source[start : start + _COPY_CHUNK]
    del source
    array.flush()
    del array


def tokenize_corpus(
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    out_dir: Path,
    batch_size: int = 512,
    total: int | None = None,
    progress: bool = True,
) -> TokenizedCorpus:
    """Write tokens.npy and doc_offsets.npy (n_docs + 1, int64) for `texts` into `out_dir`.

    A document that tokenizes to nothing keeps a zero-length range, so document numbers
    stay aligned with the corpus.
    """
    out_dir = Path(out_dir)
    vocab_size = len(tokenizer)
    dtype = smallest_uint(vocab_size)
    raw = out_dir / "tokens.raw"
    lengths: list[np.ndarray] = []
    with (
        open(raw, "wb") as handle,
        tqdm(total=total, unit="doc", desc="tokenize", disable=not progress) as bar,
    ):
        for batch in _batches(texts, batch_size):
            ids = encode_texts(tokenizer, batch)
            sizes = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(sizes.sum()))
            if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
                raise ValueError(f"token id outside the vocabulary of {vocab_size}")
            handle.write(flat.astype(dtype).tobytes())
            lengths.append(sizes)
            bar.update(len(batch))
    sizes = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    _write_npy(raw, out_dir / TOKENS_FILE, dtype, int(offsets[-1]))
    raw.unlink()
    np.save(out_dir / OFFSETS_FILE, offsets)
    return TokenizedCorpus(
        documents=int(sizes.size),
        tokens=int(offsets[-1]),
        empty_documents=int((sizes == 0).sum()),
        dtype=dtype.name,
        vocab_size=vocab_size,
    )


def load_tokens(folder: Path, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, doc_offsets) of a tokenize_corpus artifact; tokens memory-mapped by default
    (a sharded artifact's are concatenated, so read whole)."""
    folder = Path(folder)
    shards = _shard_folders(folder)
    if shards is None:
        tokens = np.load(folder / TOKENS_FILE, mmap_mode="r" if mmap else None)
        return tokens, np.load(folder / OFFSETS_FILE)
    return np.concatenate([np.load(shard / TOKENS_FILE) for shard in shards]), load_doc_offsets(
        folder
    )


def load_doc_offsets(folder: Path) -> np.ndarray:
    """Global document offsets (n_docs + 1, int64) of a tokenize_corpus artifact."""
    folder = Path(folder)
    shards = _shard_folders(folder)
    if shards is None:
        return np.load(folder / OFFSETS_FILE)
    pieces, start = [], 0
    for shard in shards:
        offsets = np.load(shard / OFFSETS_FILE)
        pieces.append(offsets[:-1] + start)
        start += int(offsets[-1])
    return np.concatenate([*pieces, np.asarray([start], dtype=np.int64)]).astype(np.int64)


def _shard_folders(folder: Path) -> list[Path] | None:
    """The shard folders of a sharded tokens artifact; None: the plain layout (also a bare
    folder of the two files, without a manifest)."""
    if not (folder / MANIFEST).is_file():
        return None
    found = shard_paths(folder, "tokens")
    return None if found[0][1] == folder else [path for _, path in found]


def tokenize_shard(
    documents: str,
    out: str,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    manifest: dict[str, Any],
) -> dict[str, int]:
    """Shard job: tokenize one corpus shard's documents file into the new folder `out` and
    write its manifest (`manifest`: the Manifest fields the stage decides: schema, params,
    inputs). The tokenizer is the stage's, shared by every job."""
    from retrollm.artifacts import read_records, write_manifest
    from schemas import CorpusRecord, Manifest

    target = Path(out)
    target.mkdir()
    texts = (record.contents for record in read_records(Path(documents), CorpusRecord))
    result = tokenize_corpus(tokenizer, texts, target, batch_size=batch_size, progress=False)
    counts = {
        "documents": result.documents,
        "tokens": result.tokens,
        "empty_documents": result.empty_documents,
    }
    write_manifest(target, Manifest(**manifest, counts=counts))
    return counts
