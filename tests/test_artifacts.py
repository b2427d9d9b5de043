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
