"""The folder layout of a sharded corpus-side artifact (corpus, tokens, index; docs/design.md §11).

One shard (the default) is the plain layout every stage has always written. With
`prepare_corpus.docs_per_shard`, the corpus and everything made from it shard by shard
are folders of shard folders (shard-00000, ...), each a contiguous run of documents with
its own manifest; the artifact's manifest lists them under `extra.shards` in corpus order
with the global document number where each starts. A shard's manifest names what it was
made from (the upstream shard's content, the code of the job), so a rerun copies every
shard whose inputs, params and code are unchanged instead of rebuilding it (incremental
corpus growth).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from retrollm.artifacts import MANIFEST, ArtifactError, read_manifest, verify_files
from retrollm.artifacts import _fingerprint as manifest_fingerprint  # one formula, not two
from schemas.manifest import InputRef, Manifest

__all__ = [
    "SHARDS_KEY",
    "ShardInfo",
    "ShardJobs",
    "checked_shards",
    "data_files",
    "listed_shards",
    "plan_shard_jobs",
    "reuse_shard",
    "shard_content",
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


def listed_shards(manifest: Manifest, where: Path | str = "") -> list[ShardInfo] | None:
    """The shards of a sharded artifact, checked to tile its documents; None: unsharded.
    `where`: the artifact's folder, for the error messages."""
    raw = manifest.extra.get(SHARDS_KEY)
    if raw is None:
        return None
    return checked_shards(raw, Path(where) / MANIFEST)


def checked_shards(raw: Any, file: Path) -> list[ShardInfo]:
    """A shard list as written (a list of ShardInfo dicts), checked to tile documents
    0..n from plain folder names; `file` names where it was read, for the errors."""
    try:
        shards = [ShardInfo.model_validate(entry) for entry in raw]
    except (ValidationError, TypeError) as error:
        raise ArtifactError(f"{file}: malformed shard list ({error})") from error
    start = 0
    for shard in shards:
        if Path(shard.folder).name != shard.folder or shard.folder in ("", ".", ".."):
            raise ArtifactError(f"{file}: shard folder {shard.folder!r} is not a plain name")
        if shard.doc_start != start or shard.n_docs < 0:
            raise ArtifactError(f"{file}: shard {shard.folder} does not start at document {start}")
        start += shard.n_docs
    return shards


def shard_paths(folder: Path, schema_name: str) -> list[tuple[ShardInfo, Path]]:
    """(shard, its folder) of an artifact in corpus order; an unsharded artifact is one
    shard, the folder itself."""
    manifest = read_manifest(folder, schema_name)
    shards = listed_shards(manifest, folder)
    if shards is None:
        n_docs = manifest.counts.get("documents", 0)
        return [(ShardInfo(folder=".", doc_start=0, n_docs=n_docs), Path(folder))]
    return [(shard, Path(folder) / shard.folder) for shard in shards]


def data_files(folder: Path, schema_name: str, names: Iterable[str]) -> list[str]:
    """The manifest names of `names` in every shard (for checked_input)."""
    names = list(names)
    shards = listed_shards(read_manifest(folder, schema_name), folder)
    if shards is None:
        return names
    return [f"{shard.folder}/{name}" for shard in shards for name in names]


def shard_content(manifest: Manifest, shard: str) -> str:
    """sha256 of one shard's files as the artifact's own manifest records them: the key
    of what is made from the shard, taken from hashes its reader has just verified (a
    shard's own manifest is covered by no other, so it is not trusted for this)."""
    prefix = f"{shard}/"
    files = {name: digest for name, digest in manifest.files.items() if name.startswith(prefix)}
    if not files:
        raise ArtifactError(f"shard {shard}: no files listed in its artifact's manifest")
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


@dataclass
class ShardJobs:
    """What a stage that works shard by shard has to do: its upstream's shards in corpus
    order, a job call for each shard that is not carried forward, and how many were."""

    shards: list[tuple[ShardInfo, Path]]
    calls: list[dict[str, Any]] = field(default_factory=list)
    reused: int = 0

    def listing(self) -> list[dict[str, Any]]:
        """The shard list of the stage's own output (the same shards as its upstream's)."""
        return [info.model_dump() for info, _ in self.shards]


def plan_shard_jobs(
    upstream: Path,
    upstream_schema: str,
    files: Mapping[str, str],
    previous: Path,
    out: Path,
    shard_manifest: Mapping[str, Any],
    refs: Mapping[str, InputRef],
) -> ShardJobs:
    """One job call per shard of `upstream`: `files` maps a job argument to the name of
    the upstream shard file it reads (absolute paths: a cluster worker runs elsewhere),
    `out` is the new shard folder, `manifest` the Manifest fields of the shard it writes
    (`shard_manifest`: schema_name, schema_version, stage, params; inputs: the upstream
    shard's content, keyed by its schema name, plus `refs`: model, code, ...). A shard of
    `previous` (the stage's last output) made the same way from the same inputs is
    hard-linked into `out` instead."""
    manifest = read_manifest(upstream, upstream_schema)
    plan = ShardJobs(shard_paths(upstream, upstream_schema))
    for info, folder in plan.shards:
        content = shard_content(manifest, info.folder)
        source = InputRef(
            path=str(folder), schema_name=f"{upstream_schema}-shard", fingerprint=content
        )
        inputs = {upstream_schema: source, **refs}
        made_from = {key: ref.fingerprint for key, ref in inputs.items()}
        target = out / info.folder
        if reuse_shard(
            previous / info.folder,
            target,
            shard_manifest["schema_name"],
            shard_manifest["schema_version"],
            shard_manifest["params"],
            made_from,
        ):
            plan.reused += 1
            continue
        call = {arg: str((folder / name).resolve()) for arg, name in files.items()}
        call |= {"out": str(target.resolve()), "manifest": {**shard_manifest, "inputs": inputs}}
        plan.calls.append(call)
    return plan


def reuse_shard(
    previous: Path,
    target: Path,
    schema_name: str,
    schema_version: int,
    params: dict[str, Any],
    inputs: dict[str, str],
) -> bool:
    """Copy the shard folder `previous` (a shard of the last output) to `target` when it
    is intact and was made by this schema version with the same params from the same
    inputs (fingerprints: upstream shard content, job code); False: rebuild it."""
    if not (previous / MANIFEST).is_file():
        return False
    try:
        manifest = read_manifest(previous, schema_name)
    except ArtifactError:
        return False
    made_from = {key: ref.fingerprint for key, ref in manifest.inputs.items()}
    if (manifest.schema_version, manifest.params, made_from) != (schema_version, params, inputs):
        return False
    if manifest_fingerprint(manifest) != manifest.fingerprint:
        return False  # an edited manifest
    on_disk = {str(p.relative_to(previous)) for p in previous.rglob("*") if p.is_file()} - {
        MANIFEST
    }
    if on_disk != set(manifest.files):
        return False  # files it does not list (or lost ones) are not carried forward
    try:  # a damaged copy is rebuilt, never carried forward
        verify_files(previous, manifest, None, content=True)
    except (ArtifactError, OSError):
        return False
    shutil.copytree(previous, target, copy_function=_link_or_copy)
    return True


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link where the file system allows one (the bytes are never rewritten in
    place: every stage writes a new folder), else a copy."""
    try:
        Path(destination).hardlink_to(source)
    except OSError:
        shutil.copy2(source, destination)
