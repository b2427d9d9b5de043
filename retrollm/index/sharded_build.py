"""Making a sharded index from concatenated token ids and document offsets, and opening
either kind of saved index.

With `out`, each shard is written as soon as it is sorted and dropped from memory, so the
build's peak is that of one shard, and the index returned is the memory-mapped one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from retrollm.artifacts import atomic_dir
from retrollm.index.build import check_inputs
from retrollm.index.core import CorpusIndex
from retrollm.index.sharded import ShardedIndex
from retrollm.index.shards import MANIFEST, ShardEntry, shard_folder, shard_plan, write_manifest


def build_sharded(
    tokens: ArrayLike,
    doc_offsets: ArrayLike,
    docs_per_shard: int | None = None,
    tokens_per_shard: int | None = None,
    backend: str = "pydivsufsort",
    tokenizer_fingerprint: str = "",
    out: str | Path | None = None,
) -> ShardedIndex:
    """Index documents in shards cut at document boundaries (shards.shard_plan); the
    global document numbers are the input's."""
    tokens, offsets = check_inputs(np.asarray(tokens), np.asarray(doc_offsets))
    cuts = shard_plan(offsets, docs_per_shard, tokens_per_shard)
    return build_shards(tokens, offsets, cuts, backend, tokenizer_fingerprint, out)


def build_shards(
    tokens: ArrayLike,
    doc_offsets: ArrayLike,
    cuts: ArrayLike,
    backend: str = "pydivsufsort",
    tokenizer_fingerprint: str = "",
    out: str | Path | None = None,
) -> ShardedIndex:
    """One shard per run of documents [cuts[k], cuts[k + 1]); cuts go from 0 to n_docs,
    non-decreasing (a repeated cut makes an empty shard)."""
    tokens, offsets = check_inputs(np.asarray(tokens), np.asarray(doc_offsets))
    cuts = np.asarray(cuts, dtype=np.int64)
    n_docs = offsets.shape[0] - 1
    if cuts.ndim != 1 or cuts.size < 2 or cuts[0] != 0 or cuts[-1] != n_docs:
        raise ValueError(f"shard cuts must run from 0 to n_docs={n_docs}")
    if np.any(np.diff(cuts) < 0):
        raise ValueError("shard cuts must be non-decreasing")

    def shard(k: int) -> CorpusIndex:
        a, b = int(cuts[k]), int(cuts[k + 1])
        begin, end = int(offsets[a]), int(offsets[b])
        return CorpusIndex.build(
            tokens[begin:end], offsets[a : b + 1] - begin, backend, tokenizer_fingerprint
        )

    n_shards = cuts.shape[0] - 1
    if out is None:
        return ShardedIndex([shard(k) for k in range(n_shards)])
    with atomic_dir(Path(out)) as tmp:
        entries = []
        for k in range(n_shards):
            built = shard(k)
            built.save(tmp / shard_folder(k))
            a, b = int(cuts[k]), int(cuts[k + 1])
            entries.append(ShardEntry(shard_folder(k), a, b - a, int(offsets[a]), built.n_tokens))
            del built
        write_manifest(tmp, entries, tokenizer_fingerprint, backend)
    return ShardedIndex.load(out, tokenizer_fingerprint)


def load_index(
    path: str | Path, expected_tokenizer_fingerprint: str | None = None, verify: bool = False
) -> CorpusIndex | ShardedIndex:
    """Memory-map the index saved at `path`, sharded (shards.json there) or not."""
    kind = ShardedIndex if (Path(path) / MANIFEST).is_file() else CorpusIndex
    return kind.load(path, expected_tokenizer_fingerprint, verify)


def build_index_shard(
    tokens: str,
    doc_offsets: str,
    out: str,
    backend: str,
    tokenizer_fingerprint: str,
    manifest: dict[str, Any],
) -> dict[str, int]:
    """Shard job: index one tokens shard (its tokens and offsets .npy files) into the new
    folder `out` and write its manifest (`manifest`: the Manifest fields the stage decides:
    schema, params, inputs). Its peak memory follows the shard's size, not the corpus's."""
    from retrollm.artifacts import write_manifest as write_stage_manifest
    from schemas import Manifest

    ids = np.load(tokens, mmap_mode="r")
    offsets = np.load(doc_offsets)
    index = CorpusIndex.build(ids, offsets, backend, tokenizer_fingerprint)
    index.save(out)
    counts = {"documents": index.n_docs, "tokens": index.n_tokens}
    write_stage_manifest(Path(out), Manifest(**manifest, counts=counts))
    return counts
