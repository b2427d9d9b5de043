"""The folder layout of a sharded corpus-side artifact (corpus, tokens, index; docs/design.md §11).

One shard (the default) is the plain layout every stage has always written. With
`prepare_corpus.docs_per_shard`, the corpus and everything made from it shard by shard
are folders of shard folders (shard-00000, ...), each a contiguous run of documents with
its own manifest; the artifact's manifest lists them under `extra.shards` in corpus order
with the global document number where each starts. A shard's manifest names the
upstream shard it was made from, so a rerun copies every shard whose input and params
are unchanged instead of rebuilding it (incremental corpus growth).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from retrollm.artifacts import MANIFEST, ArtifactError, read_manifest, verify_files
from schemas.manifest import Manifest

__all__ = [
    "SHARDS_KEY",
    "ShardInfo",
    "data_files",
    "listed_shards",
    "reuse_shard",
    "shard_folder",
    "shard_paths",
]

SHARDS_KEY = "shards"


def shard_folder(number: int) -> str:
    """The folder name of shard `number`, the same in every sharded artifact."""
    return f"shard-{number:05d}"


class ShardInfo(BaseModel):
    """One shard as the artifact's manifest lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folder: str
    doc_start: int
    n_docs: int


def listed_shards(manifest: Manifest) -> list[ShardInfo] | None:
    """The shards of a sharded artifact, checked to tile its documents; None: unsharded."""
    raw = manifest.extra.get(SHARDS_KEY)
    if raw is None:
        return None
    shards = [ShardInfo.model_validate(entry) for entry in raw]
    start = 0
    for shard in shards:
        if shard.doc_start != start or Path(shard.folder).name != shard.folder:
            raise ArtifactError(f"shard {shard.folder!r} does not start at document {start}")
        start += shard.n_docs
    return shards


def shard_paths(folder: Path, schema_name: str) -> list[tuple[ShardInfo, Path]]:
    """(shard, its folder) of an artifact in corpus order; an unsharded artifact is one
    shard, the folder itself."""
    manifest = read_manifest(folder, schema_name)
    shards = listed_shards(manifest)
    if shards is None:
        n_docs = manifest.counts.get("documents", 0)
        return [(ShardInfo(folder=".", doc_start=0, n_docs=n_docs), Path(folder))]
    return [(shard, Path(folder) / shard.folder) for shard in shards]


def data_files(folder: Path, schema_name: str, names: Iterable[str]) -> list[str]:
    """The manifest names of `names` in every shard (for checked_input)."""
    names = list(names)
    shards = listed_shards(read_manifest(folder, schema_name))
    if shards is None:
        return names
    return [f"{shard.folder}/{name}" for shard in shards for name in names]


def reuse_shard(
    previous: Path, target: Path, schema_name: str, params: dict[str, Any], inputs: dict[str, str]
) -> Manifest | None:
    """Copy the shard folder `previous` (a shard of the last output) to `target` when its
    manifest was made with the same params from the same inputs (fingerprints); returns
    its manifest, or None when it must be rebuilt."""
    if not (previous / MANIFEST).is_file():
        return None
    try:
        manifest = read_manifest(previous, schema_name)
    except ArtifactError:
        return None
    made_from = {key: ref.fingerprint for key, ref in manifest.inputs.items()}
    if manifest.params != params or made_from != inputs:
        return None
    try:  # a damaged copy is rebuilt, never carried forward
        verify_files(previous, manifest, None, content=True)
    except (ArtifactError, OSError):
        return None
    shutil.copytree(previous, target, copy_function=_link_or_copy)
    return manifest


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link where the file system allows one (the bytes are never rewritten in
    place: every stage writes a new folder), else a copy."""
    try:
        Path(destination).hardlink_to(source)
    except OSError:
        shutil.copy2(source, destination)
