"""On-disk artifacts: atomic output folders, manifests, record streams.

Every stage writes into a temporary sibling folder and renames it into place only after
the manifest is written, so an interrupted stage never leaves a half artifact behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import warnings
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
    """Yield a fresh temporary folder that replaces `final` only if the block succeeds.

    Temporary folders of runs that were killed (their process is gone) are removed first,
    so a kill costs one rerun, not a copy of the artifact left on disk for good.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(final: Path) -> list[Path]:
    """Remove the temporary siblings of `final` whose writing process no longer runs.

    Names are `.NAME.tmp-PID` and `.NAME.old-PID`, and a nested atomic write (an index
    saved into a stage's temporary folder) adds one level: `..NAME.tmp-PID.tmp-PID`.
    A folder is left alone while any PID in its name is alive (a concurrent run).
    """
    final = Path(final)
    pattern = re.compile(rf"^\.+{re.escape(final.name)}((?:\.(?:tmp|old)-\d+)+)$")
    removed = []
    for sibling in final.parent.iterdir() if final.parent.is_dir() else ():
        match = pattern.match(sibling.name)
        if match is None or not sibling.is_dir():
            continue
        pids = [int(pid) for pid in re.findall(r"-(\d+)", match.group(1))]
        if any(_pid_alive(pid) for pid in pids):
            continue
        shutil.rmtree(sibling, ignore_errors=True)
        removed.append(sibling)
    return removed


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
    """Hash every file in `folder`, fill in `files`, `sizes` and `fingerprint`, write
    manifest.json."""
    folder = Path(folder)
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST]
    files = {str(p.relative_to(folder)): sha256_file(p) for p in paths}
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in paths}
    manifest = manifest.model_copy(update={"files": files, "sizes": sizes})
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


class UnverifiedInputWarning(UserWarning):
    """Input files were checked by size only: their contents were not re-hashed."""


# sha256 per (path, inode, size, mtime) for this process: a stage that checks its inputs
# and then loads them through a library that checks again hashes each file once.
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file, computed once per process for the same bytes on disk."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def select_files(folder: Path, manifest: Manifest, names: Iterable[str] | None) -> list[str]:
    """Manifest entries for `names` (file names, or folder prefixes ending in '/');
    None: every file. A name the manifest does not list is an error."""
    if names is None:
        return sorted(manifest.files)
    chosen: list[str] = []
    for name in names:
        if name.endswith("/"):
            found = [f for f in manifest.files if f.startswith(name)]
        else:
            found = [name] if name in manifest.files else []
        if not found:
            raise ArtifactError(
                f"{Path(folder) / name}: not listed in {Path(folder) / MANIFEST}, "
                "so it cannot be checked; rerun the stage that made it"
            )
        chosen += found
    return sorted(set(chosen))


def verify_files(
    folder: Path, manifest: Manifest, names: Iterable[str] | None = None, content: bool = True
) -> list[str]:
    """Check files (all, or `names`, see select_files) against the manifest before use.

    Size first (no read: catches truncated and replaced copies), then with `content` the
    sha256 of every byte (catches a flipped one). content=False is the escape hatch for
    corpora too large to re-hash on every run, and warns. Returns the names checked.
    """
    folder = Path(folder)
    chosen = select_files(folder, manifest, names)
    for name in chosen:
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in {folder / MANIFEST} but missing")
        expected = manifest.sizes.get(name)
        if expected is not None and path.stat().st_size != expected:
            raise ArtifactError(
                f"{path}: {path.stat().st_size} bytes, {folder / MANIFEST} records {expected} "
                "(truncated or replaced copy); rebuild or pull it again"
            )
    if not content:
        warnings.warn(
            f"{folder}: {len(chosen)} input files checked by size only, not by content "
            "(verification is off)",
            UnverifiedInputWarning,
            stacklevel=2,
        )
        return chosen
    for name in chosen:
        if file_digest(folder / name) != manifest.files[name]:
            raise ArtifactError(
                f"{folder / name}: sha256 differs from {folder / MANIFEST} (corrupt or "
                "tampered copy); rebuild or pull it again"
            )
    return chosen


def input_ref(folder: Path, schema_name: str) -> InputRef:
    manifest = read_manifest(folder, schema_name)
    return InputRef(path=str(folder), schema_name=schema_name, fingerprint=manifest.fingerprint)


def verified_ref(
    folder: Path,
    schema_name: str | None,
    names: Iterable[str] | None = None,
    content: bool = True,
) -> InputRef:
    """An input's ref after checking its manifest and the files read from it
    (`names`, see select_files; schema_name None: any kind of artifact)."""
    manifest = read_manifest(folder, schema_name)
    verify_files(folder, manifest, names, content)
    return InputRef(
        path=str(folder), schema_name=manifest.schema_name, fingerprint=manifest.fingerprint
    )


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


# Beside an artifact, never inside it: wall times and resume counts are facts of a machine
# and a moment, not of params and inputs, and in the artifact they would give every rerun
# new bytes and new hashes downstream. `.dvcignore` hides the pattern from DVC, so no
# output or dependency hash sees them (and a pulled clone simply has none).
RUN_LOG_SUFFIX = ".run.json"


def run_log_path(artifact: Path) -> Path:
    """Where the run log of the artifact folder `artifact` lives (`NAME.run.json`)."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + RUN_LOG_SUFFIX)


def write_run_log(artifact: Path, payload: dict[str, Any]) -> Path:
    """Record what the latest run that wrote `artifact` measured; returns the log's path."""
    path = run_log_path(artifact)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, payload)
    return path


def read_run_log(artifact: Path) -> dict[str, Any] | None:
    """The run log of `artifact`, or None where no run on this machine wrote one."""
    path = run_log_path(artifact)
    return json.loads(path.read_text()) if path.is_file() else None
