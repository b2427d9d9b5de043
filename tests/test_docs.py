"""The notes that code comments cite are part of the project, and every cited section
exists: a reader who clones the repository can follow each reference."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/(method|design)\.md §(\d+)(?:-(\d+))?")
OUTSIDE = re.compile(r"\b(RETROLLM|DESIGN)\.md\b")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    paths = [REPO / name for name in listed if name.endswith((".py", ".md", ".yaml"))]
    return [path for path in paths if path.is_file()]


def _sections(name: str) -> set[int]:
    text = (REPO / "docs" / f"{name}.md").read_text()
    return {int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE)}


def test_every_cited_section_exists_and_nothing_outside_is_cited() -> None:
    sections = {name: _sections(name) for name in ("method", "design")}
    assert sections["method"] and sections["design"]
    cited, outside = [], []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8")
        outside += [f"{path.relative_to(REPO)}" for _ in OUTSIDE.finditer(text)]
        for match in CITATION.finditer(text):
            name, first, last = match.group(1), int(match.group(2)), match.group(3)
            for number in range(first, int(last or first) + 1):
                cited.append((name, number))
                assert number in sections[name], f"{path.relative_to(REPO)}: {match.group(0)}"
    assert not outside, f"references to notes that are not in the project: {outside}"
    assert {name for name, _ in cited} == {"method", "design"}
