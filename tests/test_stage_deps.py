"""dvc.yaml deps cannot drift from the code: every module a stage imports, directly or
through other project modules, is a declared dep of that stage (or lies in a folder that
is), so editing it reruns the stage.

Imports at module level are followed (they run whenever the stage does). Imports inside
functions are not: they serve a path only some runs take (an adapter in
`load_causal_lm`, the decoder for the retrollm methods of stages/evaluate.py), and the
dvc stages that take such a path list those deps themselves.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("retrollm", "stages", "schemas")
COMMAND = re.compile(r"python -m (stages\.\w+)")


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run on import: into if/try/with/class bodies, not into functions
    or `if TYPE_CHECKING:` blocks."""
    found: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        found.append(node)
        if isinstance(node, ast.If):
            typing_only = isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            found += _module_level([] if typing_only else node.body)
            found += _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _module_level(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            found += _module_level(node.body)
    return found


def _imports(path: Path) -> set[str]:
    """Project modules `path` imports on import, with the packages that importing them
    executes (`a.b.c` runs a/__init__.py and a/b/__init__.py too)."""
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text(), filename=str(path)).body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in PACKAGES:
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def _closure(module: str) -> set[Path]:
    """Files of `module` and of every project module it imports, transitively."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = _module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(path))
    return seen


def _stages() -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (its module, its deps without interpolated data paths)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    stages = {}
    for name, stage in spec.items():
        body = stage.get("do", stage)
        match = COMMAND.search(body["cmd"])
        assert match, f"{name}: cmd does not run a stage module"
        deps = [d for d in body.get("deps", []) if "${" not in d]
        stages[name] = (match.group(1), deps)
    return stages


STAGES = _stages()


def _holds_code(path: Path) -> bool:
    """False for a package marker that is empty or only a docstring: it runs no code, so
    it cannot change what a stage makes."""
    body = ast.parse(path.read_text()).body
    docstring = (
        body[:1] and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    )
    return len(body) > (1 if docstring else 0)


def _covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_declared_dep(stage: str) -> None:
    module, deps = STAGES[stage]
    needed = _closure(module)
    assert needed, f"{stage}: {module} not found"
    missing = sorted(
        path.relative_to(REPO).as_posix()
        for path in needed
        if _holds_code(path) and not _covered(path, deps)
    )
    assert not missing, f"{stage}: imports {missing}, which dvc.yaml does not list as deps"


def test_the_import_walk_follows_module_level_imports_only() -> None:
    files = {p.relative_to(REPO).as_posix() for p in _closure("stages.evaluate")}
    assert {"retrollm/retrieval/dense.py", "retrollm/baselines.py", "schemas/manifest.py"} <= files
    assert "retrollm/decoding/pipeline.py" not in files  # imported inside answer_fn
    windows = {p.relative_to(REPO).as_posix() for p in _closure("retrollm.retrieval.windows")}
    assert "retrollm/retrieval/scorer.py" not in windows  # under `if TYPE_CHECKING:`
