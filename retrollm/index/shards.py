"""Cutting a corpus into shards, and the folder format of a sharded index.

A shard is a contiguous run of documents, indexed on its own (a CorpusIndex folder). The
sharded folder holds the shard folders plus shards.json, which lists them in corpus order
with the global document and token offset where each starts: global document numbers are
simply those offsets plus the shard's own numbers, so they never move when shards are
added after the last one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrollm.index.storage import IndexLoadError
from retrollm.sharding import shard_folder as shard_folder  # one name for every sharded artifact

FORMAT = "retrollm-sharded-index"
FORMAT_VERSION = 1
MANIFEST = "shards.json"


@dataclass(frozen=True, slots=True)
class ShardEntry:
    """One shard as shards.json lists it."""

    folder: str  # a plain name inside the sharded folder
    doc_start: int
    n_docs: int
    token_start: int
    n_tokens: int


def shard_plan(
    doc_offsets: np.ndarray, docs_per_shard: int | None = None, tokens_per_shard: int | None = None
) -> np.ndarray:
    """Document cuts [0, c1, ..., n_docs] of consecutive shards (int64, at least one shard).

    docs_per_shard: every shard but the last holds that many documents. tokens_per_shard:
    each shard takes documents while it stays within that many tokens; a longer document
    gets a shard of its own (documents are never split).
    """
    if (docs_per_shard is None) == (tokens_per_shard is None):
        raise ValueError("give exactly one of docs_per_shard and tokens_per_shard")
    size = docs_per_shard if docs_per_shard is not None else tokens_per_shard
    if size is None or size < 1:
        name = "docs_per_shard" if docs_per_shard is not None else "tokens_per_shard"
        raise ValueError(f"{name} must be positive, got {size}")
    offsets = np.asarray(doc_offsets, dtype=np.int64)
    n_docs = int(offsets.shape[0] - 1)
    if n_docs == 0:
        return np.zeros(2, dtype=np.int64)  # an empty corpus is one empty shard
    if docs_per_shard is not None:
        return np.append(np.arange(0, n_docs, docs_per_shard, dtype=np.int64), n_docs)
    cuts = [0]
    while cuts[-1] < n_docs:
        start = cuts[-1]
        # Last document end within budget; one search per shard, not a loop over documents.
        end = int(np.searchsorted(offsets, offsets[start] + size, side="right")) - 1
        cuts.append(max(end, start + 1))
    return np.asarray(cuts, dtype=np.int64)


def write_manifest(path: Path, entries: list[ShardEntry], fingerprint: str, backend: str) -> None:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tokenizer_fingerprint": fingerprint,
        "backend": backend,
        "n_docs": sum(e.n_docs for e in entries),
        "n_tokens": sum(e.n_tokens for e in entries),
        "shards": [asdict(e) for e in entries],
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(path: Path) -> tuple[list[ShardEntry], dict[str, Any]]:
    """Shard entries of a sharded folder, checked to tile the corpus without gaps."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        raise IndexLoadError(f"{file}: no sharded index here (manifest missing)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexLoadError(f"{file}: unreadable sharded index manifest ({error})") from error
    required = {"format", "format_version", "tokenizer_fingerprint", "backend", "n_docs"}
    required |= {"n_tokens", "shards"}
    if not isinstance(manifest, dict) or not required <= manifest.keys():
        raise IndexLoadError(f"{file}: not a sharded index manifest (fields missing)")
    if manifest["format"] != FORMAT or manifest["format_version"] != FORMAT_VERSION:
        raise IndexLoadError(
            f"{file}: unsupported format {manifest['format']!r} v{manifest['format_version']!r}"
            f" (this code reads {FORMAT} v{FORMAT_VERSION})"
        )
    try:
        entries = [ShardEntry(**entry) for entry in manifest["shards"]]
    except TypeError as error:
        raise IndexLoadError(f"{file}: malformed shard entry ({error})") from error
    if not entries:
        raise IndexLoadError(f"{file}: lists no shard")
    docs = tokens = 0
    for entry in entries:
        if Path(entry.folder).name != entry.folder or entry.folder in ("", ".", ".."):
            raise IndexLoadError(f"{file}: shard folder {entry.folder!r} is not a plain name")
        if (entry.doc_start, entry.token_start) != (docs, tokens) or min(
            entry.n_docs, entry.n_tokens
        ) < 0:
            raise IndexLoadError(
                f"{file}: shard {entry.folder} does not start where the previous one ends"
            )
        docs, tokens = docs + entry.n_docs, tokens + entry.n_tokens
    if (docs, tokens) != (manifest["n_docs"], manifest["n_tokens"]):
        raise IndexLoadError(f"{file}: shard sizes do not add up to the corpus totals")
    return entries, manifest
