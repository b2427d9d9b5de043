"""The layers of CONVENTIONS.md hold: the engine (retrollm/, schemas/) imports no stage
and no bench script, and inference imports nothing of training. Every import counts,
inside functions too, since a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Code that answers questions; training writes adapters, inference only reads them.
INFERENCE = ("retrollm/decoding", "retrollm/inspector", "retrollm/retrieval", "retrollm/index")
INFERENCE_FILES = ("retrollm/models.py", "retrollm/baselines.py", "retrollm/adapters.py")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(*roots: str) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        path = REPO / root
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def _offenders(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in files
        for name in _imported(path)
        if name.split(".")[0] in banned or any(name.startswith(b + ".") for b in banned)
    )


def test_the_engine_imports_no_stage_and_no_bench() -> None:
    assert not _offenders(_files("retrollm", "schemas"), ("stages", "bench"))


def test_inference_imports_nothing_of_training() -> None:
    files = _files(*INFERENCE, *INFERENCE_FILES)
    assert not _offenders(files, ("retrollm.training",))


@pytest.mark.parametrize("stage", sorted(p.stem for p in (REPO / "stages").glob("*.py")))
def test_a_stage_imports_no_other_stage(stage: str) -> None:
    allowed = {"stages.common", f"stages.{stage}"}
    imported = _imported(REPO / "stages" / f"{stage}.py")
    others = sorted(n for n in imported if n.startswith("stages.") and n not in allowed)
    assert not others, f"stages/{stage}.py imports {others}; shared code goes to the engine"


def test_bench_uses_no_private_name_of_a_stage() -> None:
    private = sorted(
        f"{path.relative_to(REPO)}: {alias.name}"
        for path in _files("bench")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages")
        for alias in node.names
        if alias.name.startswith("_")
    )
    assert not private
