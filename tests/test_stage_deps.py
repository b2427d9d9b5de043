"""dvc.yaml deps cannot drift from the code: every module a stage imports, directly or
through other project modules, is a declared dep of that stage (or lies in a folder that
is), so editing it reruns the stage.

Every import is followed, those inside functions too: a lazy import is still code the
stage runs. The only exceptions are paths a stage provably never takes, listed in
NOT_TAKEN with the reason (the decoder inside evaluate's answer_fn serves retrollm
methods only; an adapter is read only where one is loaded), so a new lazy import
anywhere else fails here until it is declared.
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


def _import_nodes(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in `body`, inside functions too, but not in an
    `if TYPE_CHECKING:` block (it never runs)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
            continue
        if isinstance(node, ast.If):
            typing_only = isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            found += _import_nodes([] if typing_only else node.body)
            found += _import_nodes(node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                found += _import_nodes([child])
            elif isinstance(child, ast.excepthandler):
                found += _import_nodes(child.body)
    return found


def _imports(path: Path) -> set[str]:
    """Project modules `path` imports, with the packages that importing them executes
    (`a.b.c` runs a/__init__.py and a/b/__init__.py too)."""
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path)).body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in PACKAGES:
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def _closure(module: str, not_taken: frozenset[str] = frozenset()) -> set[Path]:
    """Files of `module` and of every project module it imports, transitively, except
    the modules in `not_taken` (and what only they import)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = None if name in not_taken else _module_file(name)
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
_NO_ADAPTER = {
    "build_rag_trainset", "build_trainset", "evaluate", "evaluate_baseline", "prepare_model",
    "report", "tokenize_corpus",
}  # fmt: skip
# module -> (why a stage never runs it, the stages that never do)
NOT_TAKEN: dict[str, tuple[str, set[str]]] = {
    "retrollm.adapters": ("load_causal_lm reads an adapter only when given one", _NO_ADAPTER),
    "retrollm.decoding.pipeline": (
        "evaluate's answer_fn builds the decoder for retrollm methods only",
        {"evaluate_baseline", "evaluate_rag_lora"},
    ),
    "retrollm.index": (
        "evaluate's funnel reads the index for retrollm rows only",
        {"evaluate_baseline", "evaluate_rag_lora"},
    ),
}


def _not_taken(stage: str) -> frozenset[str]:
    return frozenset(module for module, (_, stages) in NOT_TAKEN.items() if stage in stages)


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
    needed = _closure(module, _not_taken(stage))
    assert needed, f"{stage}: {module} not found"
    missing = sorted(
        path.relative_to(REPO).as_posix()
        for path in needed
        if _holds_code(path) and not _covered(path, deps)
    )
    assert not missing, f"{stage}: imports {missing}, which dvc.yaml does not list as deps"


def test_the_import_walk_follows_lazy_imports_but_not_typing_only_ones() -> None:
    files = {p.relative_to(REPO).as_posix() for p in _closure("stages.evaluate")}
    assert {"retrollm/retrieval/dense.py", "retrollm/baselines.py", "schemas/manifest.py"} <= files
    assert "retrollm/decoding/pipeline.py" in files  # imported inside answer_fn
    skipped = _closure("stages.evaluate", frozenset({"retrollm.decoding.pipeline"}))
    assert REPO / "retrollm/decoding/pipeline.py" not in skipped
    windows = {p.relative_to(REPO).as_posix() for p in _closure("retrollm.retrieval.windows")}
    assert "retrollm/retrieval/scorer.py" not in windows  # under `if TYPE_CHECKING:`
