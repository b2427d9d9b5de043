"""A real headless browser for the page tests: find it, load a file:// page, read back the
DOM its scripts built (chromium's --dump-dom), parsed into a flat list of elements."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip


def find_browser() -> str:
    """The browser binary ($RETROLLM_BROWSER, else chromium on PATH). Without one a test
    skips locally but fails in CI (CI=true), where .ci/run installs Debian's chromium."""
    for name in (os.environ.get("RETROLLM_BROWSER"), *NAMES):
        if name and (path := shutil.which(name)):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true and no chromium on PATH: .ci/run should have installed it "
                    "(apt-get install chromium); see its log", pytrace=False)  # fmt: skip
    pytest.skip("no headless browser here: apt-get install chromium (or set RETROLLM_BROWSER)")


def dump_dom(browser: str | list[str], url: str, profile: Path, wait_ms: int = 0) -> str:
    """The DOM after the page's scripts ran (`browser`: the binary, or it and more flags).
    Every host name resolves to nothing, so a page that reached for the network would
    show it. `wait_ms` of virtual time lets asynchronous work (Vega, frames) finish."""
    binary = [browser] if isinstance(browser, str) else list(browser)
    command = [*binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND"]  # fmt: skip
    if wait_ms:
        command.append(f"--virtual-time-budget={wait_ms}")
    result = subprocess.run([*command, "--dump-dom", url], capture_output=True, text=True,
                            timeout=180, check=False)  # fmt: skip
    if result.returncode != 0 or "<html" not in result.stdout:
        pytest.fail(f"{browser} could not load {url}:\n{result.stderr[-2000:]}", pytrace=False)
    return result.stdout


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""  # of the element and everything inside it
    own: str = ""  # of the element's own text nodes only
    classes: set[str] = field(default_factory=set)
    ancestors: list[Element] = field(default_factory=list)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        node = Element(tag, values, classes=set(values.get("class", "").split()),
                       ancestors=list(self.open))  # fmt: skip
        self.elements.append(node)
        if tag not in _VOID:
            self.open.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, -1, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        for node in self.open:
            node.text += data
        if self.open:
            self.open[-1].own += data


def elements(dom: str) -> list[Element]:
    builder = _Builder()
    builder.feed(dom)
    return builder.elements
