"""On-disk artifacts: atomic output folders, manifests, record streams.

Every stage writes into a temporary sibling folder and renames it into place only after
the manifest is written, so an interrupted stage never leaves a half artifact behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgpack
from pydantic import BaseModel, ValidationError

from schemas.manifest import InputRef, Manifest

MANIFEST = "manifest.json"
RecordT = TypeVar("RecordT", bound=BaseModel)


class ArtifactError(RuntimeError):
    """An input artifact is missing, corrupt, or does not match what a stage expects."""


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder that replaces `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def code_fingerprint(sources: Iterable[str | Path], root: Path | None = None) -> str:
    """sha256 over the contents of the given Python files (folders: every *.py below),
    path by path in sorted order, so resume keys and run fingerprints change with the
    code that decides a result, not only with its params and inputs."""
    base = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    files: set[Path] = set()
    for source in sources:
        path = base / source
        if path.is_dir():
            files.update(f for f in path.rglob("*.py") if "__pycache__" not in f.parts)
        elif path.is_file():
            files.add(path)
        else:
            raise FileNotFoundError(f"{path}: code to fingerprint not found")
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(str(file.relative_to(base)).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def _fingerprint(manifest: Manifest) -> str:
    body = manifest.model_dump(include={"schema_name", "schema_version", "params", "files"})
    body["inputs"] = {k: v.fingerprint for k, v in sorted(manifest.inputs.items())}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Hash every file in `folder`, fill in `files` and `fingerprint`, write manifest.json."""
    folder = Path(folder)
    files = {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = manifest.model_copy(update={"files": files})
    manifest = manifest.model_copy(update={"fingerprint": _fingerprint(manifest)})
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def read_manifest(folder: Path, schema_name: str | None = None) -> Manifest:
    """Load and check a manifest; a missing or foreign artifact is a clear error."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: no manifest; run the stage that builds {folder} first")
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except ValidationError as error:
        raise ArtifactError(f"{path}: malformed manifest: {error}") from error
    if schema_name is not None and manifest.schema_name != schema_name:
        raise ArtifactError(
            f"{path}: expected a '{schema_name}' artifact, found '{manifest.schema_name}'"
        )
    return manifest


def verify_files(folder: Path, manifest: Manifest, names: Iterable[str] | None = None) -> None:
    """Re-hash files (all, or `names`) and fail on any mismatch: catches corrupt copies."""
    for name in names if names is not None else manifest.files:
        path = Path(folder) / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing")
        if sha256_file(path) != manifest.files[name]:
            raise ArtifactError(f"{path}: sha256 differs from the manifest (corrupt copy?)")


def input_ref(folder: Path, schema_name: str) -> InputRef:
    manifest = read_manifest(folder, schema_name)
    return InputRef(path=str(folder), schema_name=schema_name, fingerprint=manifest.fingerprint)


def write_records(path: Path, records: Iterable[BaseModel]) -> int:
    """Write records as a msgpack stream (one map per record); return how many."""
    count = 0
    with open(path, "wb") as handle:
        packer = msgpack.Packer()
        for record in records:
            handle.write(packer.pack(record.model_dump(mode="json")))
            count += 1
    return count


def read_records(path: Path, model: type[RecordT]) -> Iterator[RecordT]:
    """Stream records back, validated against `model`; errors name the file and record."""
    with open(path, "rb") as handle:
        unpacker = msgpack.Unpacker(handle, raw=False)
        for number, raw in enumerate(unpacker, start=1):
            try:
                yield model.model_validate(raw)
            except ValidationError as error:
                raise ArtifactError(f"{path}: record {number}: {error}") from error


def write_json(path: Path, payload: Any) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
