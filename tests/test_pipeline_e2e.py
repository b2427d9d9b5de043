"""End to end: `dvc repro` of the tiny profile in a temporary copy of the repository.

Checks the graph runs, that a second `dvc repro` does nothing, and that changing one
param reruns only the stages that depend on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _dvc(workdir: Path, *args: str) -> str:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RETROLLM_PARAMS", None)
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _copy_repo(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from retrollm.tiny import build_tiny_model

    work = tmp_path_factory.mktemp("repo")
    _copy_repo(work)
    shutil.copy(work / "tests/fixtures/params.tiny.yaml", work / "params.yaml")
    texts = [json.loads(line)["contents"] for line in open(work / "tests/fixtures/corpus.jsonl")]
    build_tiny_model(texts, work / "tiny/lm")
    return work


def test_repro_builds_every_artifact_then_is_up_to_date(tiny_repo: Path) -> None:
    first = _dvc(tiny_repo, "repro")
    stages = set(yaml.safe_load((tiny_repo / "dvc.yaml").read_text())["stages"])
    expected = {s if s != "prepare_qa" else "prepare_qa@tiny" for s in stages}
    assert expected <= _ran(first), first
    for folder in ("data/assets", "data/corpus", "data/qa/tiny", "data/models/base",
                   "data/tokens", "data/index"):
        assert (tiny_repo / folder / "manifest.json").is_file(), folder

    second = _dvc(tiny_repo, "repro")
    assert _ran(second) == set(), second
    assert "up to date" in second


def test_changing_one_param_reruns_only_its_dependents(tiny_repo: Path) -> None:
    params_path = tiny_repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["tokenize_corpus"]["batch_size"] = 3
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    output = _dvc(tiny_repo, "repro")
    ran = _ran(output)
    assert "tokenize_corpus" in ran, output
    assert not ran & {"fetch_assets", "prepare_corpus", "prepare_qa@tiny", "prepare_model"}
