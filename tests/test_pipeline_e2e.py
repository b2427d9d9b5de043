"""End to end: `dvc repro` of the tiny profile in a temporary copy of the repository.

Checks the graph runs, that a second `dvc repro` does nothing, that push -> clone -> pull
gives a clone `dvc status` calls up to date, and that changing one param reruns only the
stages that depend on it.
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

from tests.params_support import merge

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
        timeout=1800,  # a shared machine runs the tiny profile in ~10 min; generous margin
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
    # A real clone has history; dvclive needs a commit to name its baseline.
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from retrollm.tiny import build_tiny_model
    from tests.retrieval_tiny import tiny_biencoder, tiny_splade

    work = tmp_path_factory.mktemp("repo")
    _copy_repo(work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    overrides = yaml.safe_load((work / "tests/fixtures/params.tiny.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(merge(params, overrides), sort_keys=False))
    lines = (work / "tests/fixtures/corpus.jsonl").read_text().splitlines()
    texts = [json.loads(line)["contents"] for line in lines]
    build_tiny_model(texts, work / "tiny/lm")
    tiny_splade(work / "tiny/splade", texts)
    tiny_biencoder(work / "tiny/biencoder", texts)
    return work


def _expected_stages(workdir: Path) -> set[str]:
    """Every stage name `dvc repro` should run, foreach/matrix stages expanded."""
    listed = _dvc(workdir, "stage", "list", "--name-only")
    return {line.strip() for line in listed.splitlines() if line.strip()}


def test_repro_builds_every_artifact_then_is_up_to_date(tiny_repo: Path) -> None:
    first = _dvc(tiny_repo, "repro")
    assert _expected_stages(tiny_repo) <= _ran(first), first
    for folder in (
        "data/assets",
        "data/corpus",
        "data/qa/tiny",
        "data/models/base",
        "data/tokens",
        "data/index",
        "data/splade",
        "data/train",
        "data/models/adapter",
        "data/train_rag",
        "data/models/adapter_rag",
        "data/eval/tiny/retrollm-lora",
        "data/eval/tiny/rag-lora",
        "data/report",
    ):
        assert (tiny_repo / folder / "manifest.json").is_file(), folder
    table = (tiny_repo / "data/report/results.md").read_text()
    assert "retrollm-lora" in table and "rag-bm25" in table and "rag-lora" in table
    page = (tiny_repo / "data/report/inspect/index.html").read_text()
    assert "inspector-data" in page and "retrollm-lora" in page
    assert "{plot_divs}" in (tiny_repo / "data/report/plots_template.html").read_text()

    second = _dvc(tiny_repo, "repro")
    assert _ran(second) == set(), second
    assert "up to date" in second


def test_a_pulled_clone_is_up_to_date(tiny_repo: Path, tmp_path: Path) -> None:
    """Sharing through a remote: what `dvc push` sends is all a clone needs."""
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]
    _dvc(tiny_repo, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    subprocess.run(["git", "add", "-A"], cwd=tiny_repo, check=True)
    subprocess.run([*git, "commit", "-qm", "ran"], cwd=tiny_repo, check=True)
    _dvc(tiny_repo, "push")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tiny_repo), str(clone)], check=True)
    _dvc(clone, "pull")
    status = _dvc(clone, "status")
    assert "Data and pipelines are up to date" in status, status
    assert (clone / "data/report/results.md").read_text() == (
        tiny_repo / "data/report/results.md"
    ).read_text()


def test_changing_one_param_reruns_only_its_dependents(tiny_repo: Path) -> None:
    params_path = tiny_repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["tokenize_corpus"]["batch_size"] = 3
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    output = _dvc(tiny_repo, "repro")
    ran = _ran(output)
    assert "tokenize_corpus" in ran, output
    assert not ran & {"fetch_assets", "prepare_corpus", "prepare_qa@tiny", "prepare_model"}
    assert not ran & {"sparse_expand", "dense_index"}, "they do not read the tokens"
