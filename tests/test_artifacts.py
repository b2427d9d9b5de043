"""The code fingerprint that run fingerprints and resume keys carry."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrollm.artifacts import code_fingerprint


def test_code_fingerprint_follows_file_contents(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "stage.py").write_text("y = 2\n")
    first = code_fingerprint(["pkg", "stage.py"], root=tmp_path)
    assert first == code_fingerprint(["stage.py", "pkg"], root=tmp_path)  # order-free
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    assert code_fingerprint(["pkg", "stage.py"], root=tmp_path) == first
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert code_fingerprint(["pkg", "stage.py"], root=tmp_path) != first
    with pytest.raises(FileNotFoundError, match=r"missing\.py"):
        code_fingerprint(["missing.py"], root=tmp_path)


def test_training_and_evaluation_code_lists_exist() -> None:
    from stages.evaluate import EVALUATION_CODE
    from stages.train import TRAINING_CODE, TrainParams, run_fingerprint

    assert code_fingerprint(TRAINING_CODE) and code_fingerprint(EVALUATION_CODE)
    params = TrainParams()
    assert run_fingerprint(params, "t", "b", 1, code="old") != run_fingerprint(
        params, "t", "b", 1, code="new"
    )


def _dead_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_stale_temp_folders_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    import subprocess

    from retrollm.artifacts import atomic_dir

    dead = _dead_pid()
    final = tmp_path / "index"
    # What a kill during build_index leaves: the stage's temp folder and, beside it, the
    # one the index's own atomic save nests inside it (a full copy of the index).
    stale = [tmp_path / f".index.tmp-{dead}", tmp_path / f"..index.tmp-{dead}.tmp-{dead}"]
    stale.append(tmp_path / f".index.old-{dead}")
    for folder in stale:
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "tokens.npy").write_bytes(b"x" * 64)
    running = subprocess.Popen(["sleep", "30"])  # a concurrent run's folder stays
    try:
        live = tmp_path / f".index.tmp-{running.pid}"
        live.mkdir()
        other = tmp_path / f".corpus.tmp-{dead}"  # another stage's: not this one's to remove
        other.mkdir()
        with atomic_dir(final) as out:
            (out / "a.txt").write_text("a")
        assert not any(folder.exists() for folder in stale)
        assert live.is_dir() and other.is_dir()
        assert (final / "a.txt").read_text() == "a"
    finally:
        running.kill()
        running.wait()


def test_build_index_removes_what_a_killed_build_left(tmp_path: Path) -> None:
    import numpy as np

    from retrollm.index import CorpusIndex

    dead = _dead_pid()
    nested = tmp_path / f"..ix.tmp-{dead}.tmp-{dead}"
    nested.mkdir()
    (nested / "suffix_array.npy").write_bytes(b"\0" * 128)
    tokens = np.arange(100, dtype=np.uint16) % 7
    CorpusIndex.build(tokens, [0, 50, 100]).save(tmp_path / "ix")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]


def test_manifest_records_sizes_and_refuses_unlisted_names(tmp_path: Path) -> None:
    from retrollm.artifacts import ArtifactError, verify_files, write_manifest
    from schemas.manifest import Manifest

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.npy").write_bytes(b"12345")
    (tmp_path / "b.json").write_text("{}")
    manifest = write_manifest(tmp_path, Manifest(schema_name="x", schema_version=1, stage="t"))
    assert manifest.sizes == {"docs/a.npy": 5, "b.json": 2}
    assert verify_files(tmp_path, manifest, ["docs/"]) == ["docs/a.npy"]
    with pytest.raises(ArtifactError, match=r"c\.json: not listed in .*manifest\.json"):
        verify_files(tmp_path, manifest, ["c.json"])
    (tmp_path / "b.json").unlink()
    with pytest.raises(ArtifactError, match=r"b\.json: listed in .* but missing"):
        verify_files(tmp_path, manifest)
