"""End to end: `dvc repro` of the tiny profile in a temporary copy of the repository.

The tiny profile cuts its corpus into four shards, so tokens and index are built by
shard jobs on a local Ray. Checks the graph runs, that a second `dvc repro` does nothing,
that a second copy reproduced from scratch has the same hash for every output, that push
-> clone -> pull gives a clone `dvc status` calls up to date, that changing one param
reruns only the stages that depend on it, and that appending documents rebuilds only the
shards that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest
import yaml

from tests.params_support import merge

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


# A full `dvc repro` of the tiny profile takes minutes, more while the twin copy below
# reproduces beside it.
REPRO_TIMEOUT_S = 1800


def _dvc_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RETROLLM_PARAMS", None)
    return env


def _dvc(workdir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=workdir,
        env=_dvc_env(),
        capture_output=True,
        text=True,
        timeout=REPRO_TIMEOUT_S,
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


def _tiny_profile(work: Path) -> Path:
    """A copy of the repository set to the tiny profile, its tiny models built."""
    from retrollm.tiny import build_tiny_model
    from tests.retrieval_tiny import tiny_biencoder, tiny_splade

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


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_profile(tmp_path_factory.mktemp("repo"))


class Twin(NamedTuple):
    path: Path
    repro: subprocess.Popen[str]
    log: IO[str]


@pytest.fixture(scope="module")
def twin_repro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    """A second copy of the tiny profile whose `dvc repro` starts at once and runs in the
    background, beside tiny_repo's: the byte-identity check below then costs a wait, not
    a second sequential pipeline run."""
    twin = _tiny_profile(tmp_path_factory.mktemp("twin"))
    # Open until teardown: the repro writes to it while the other tests run.
    log = open(tmp_path_factory.mktemp("twin_log") / "repro.log", "w+")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=twin,
        env=_dvc_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield Twin(twin, process, log)
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def _expected_stages(workdir: Path) -> set[str]:
    """Every stage name `dvc repro` should run, foreach/matrix stages expanded."""
    listed = _dvc(workdir, "stage", "list", "--name-only")
    return {line.strip() for line in listed.splitlines() if line.strip()}


@pytest.mark.usefixtures("twin_repro")  # starts the twin's repro beside this one
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


def _outputs(workdir: Path) -> dict[str, dict[str, Any]]:
    """Every output dvc.lock records, by path: its md5, size and file count."""
    lock = yaml.safe_load((workdir / "dvc.lock").read_text())
    return {
        out["path"]: {k: out.get(k) for k in ("md5", "size", "nfiles")}
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


def _file_hashes(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def test_same_params_and_inputs_give_the_same_bytes(tiny_repo: Path, twin_repro: Twin) -> None:
    """Two copies, each reproduced from scratch on this machine: every output hash agrees.
    Wall times and resume counts live in run logs beside the artifacts (NAME.run.json),
    which DVC ignores; across machines float results may still differ (README)."""
    twin = twin_repro.path
    if not (tiny_repo / "dvc.lock").is_file():  # this test run alone
        _dvc(tiny_repo, "repro")
    twin_repro.repro.wait(timeout=REPRO_TIMEOUT_S)
    twin_repro.log.seek(0)
    assert twin_repro.repro.returncode == 0, f"the twin's repro failed:\n{twin_repro.log.read()}"

    first, second = _outputs(tiny_repo), _outputs(twin)
    assert len(first) >= 20 and set(first) == set(second)
    differing = []
    for path in sorted(p for p in first if first[p] != second[p]):
        ours, theirs = _file_hashes(tiny_repo / path), _file_hashes(twin / path)
        files = sorted(f for f in ours.keys() | theirs.keys() if ours.get(f) != theirs.get(f))
        differing.append(f"{path} ({first[path]} vs {second[path]}): {', '.join(files)}")
    assert not differing, "outputs differ between two runs:\n" + "\n".join(differing)


def test_a_pulled_clone_is_up_to_date(tiny_repo: Path, tmp_path: Path) -> None:
    """Sharing through a remote: what `dvc push` sends is all a clone needs, and a
    tampered blob in the remote is refused by the stage that reads it."""
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

    # One flipped byte in a blob of the remote: a clone pulls it, and the stage that
    # reads it refuses it, naming the file.
    tokens = (tiny_repo / "data/tokens/shard-00001/tokens.npy").read_bytes()
    digest = hashlib.md5(tokens).hexdigest()
    blob = tmp_path / "remote" / "files" / "md5" / digest[:2] / digest[2:]
    assert blob.is_file(), blob
    blob.chmod(0o644)
    blob.write_bytes(tokens[:-1] + bytes([tokens[-1] ^ 1]))
    tampered = tmp_path / "tampered"
    subprocess.run(["git", "clone", "-q", str(tiny_repo), str(tampered)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "pull"], cwd=tampered, env=_dvc_env(),
                   capture_output=True, timeout=REPRO_TIMEOUT_S)  # fmt: skip
    stage = subprocess.run(
        [sys.executable, "-m", "stages.build_index"],
        cwd=tampered,
        env=_dvc_env(),
        capture_output=True,
        text=True,
        timeout=REPRO_TIMEOUT_S,
    )
    assert stage.returncode != 0
    assert "data/tokens/shard-00001/tokens.npy" in stage.stderr, stage.stderr[-2000:]


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


def test_appending_documents_rebuilds_only_the_shards_that_changed(tiny_repo: Path) -> None:
    """Two documents appended to the source: the first three shards (6 documents each)
    are unchanged, so each corpus-side stage copies them and redoes the last only."""
    source = tiny_repo / "tests/fixtures/corpus.jsonl"
    added = [
        json.dumps({"id": f"appended-{n}", "contents": f"Appended {n}\nA new document {n}."})
        for n in range(2)
    ]
    source.write_text(source.read_text() + "\n".join(added) + "\n")
    corpus_side = ["tokenize_corpus", "build_index", "sparse_expand", "dense_index"]
    output = _dvc(tiny_repo, "repro", *corpus_side)
    assert {"prepare_corpus", *corpus_side} <= _ran(output), output
    assert output.count("shards_reused=3") == len(corpus_side), output
    manifest = json.loads((tiny_repo / "data/index/manifest.json").read_text())
    assert manifest["counts"]["documents"] == 23
    assert "up to date" in _dvc(tiny_repo, "status", *corpus_side)
