"""The inspector page and the offline plots page in a real headless browser, from file://
with every host name unresolvable: filters applied through the URL, the DOM read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retrollm.inspector import Cell, CorpusView, page_data, write_page
from retrollm.plots import write_offline_template
from tests import inspector_support as support
from tests.browser import dump_dom, elements, find_browser

ALL_NQ = [f"nq/{q[0]}" for q in support.QUESTIONS]


@pytest.fixture(scope="module")
def browser() -> str:
    return find_browser()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cells = [Cell(d, m, p) for d, m, p in support.cells()]
    corpus = CorpusView(support.corpus(), support.span_text)
    data = page_data(cells, corpus, support.FULL, support.RAGS)
    return write_page(data, tmp_path_factory.mktemp("inspect") / "index.html")


def _load(browser: str, page: Path, hash_: str, tmp_path: Path) -> list:
    return elements(dump_dom(browser, page.as_uri() + hash_, tmp_path / "profile"))


def _shown(nodes: list) -> list[str]:
    return [n.attrs["data-qid"] for n in nodes if n.tag == "article"]


@pytest.mark.parametrize(
    ("hash_", "expected"),
    [
        ("#compare=full-wrong-rag-right", ["nq/q-eiffel"]),
        ("#compare=full-right-rag-wrong", ["nq/q-newton"]),
        # The outcome of the chosen method; a search over questions, ids and gold answers.
        ("#method=rag-bm25&outcome=incorrect", ["nq/q-newton", "nq/q-long"]),
        ("#dataset=nq&lost=answer&q=e", ["nq/q-eiffel", "nq/q-long"]),
    ],
)
def test_filters_choose_the_questions(
    browser: str, page: Path, tmp_path: Path, hash_: str, expected: list[str]
) -> None:
    nodes = _load(browser, page, hash_, tmp_path)
    assert _shown(nodes) == expected
    count = next(n for n in nodes if n.attrs.get("id") == "count")
    assert count.attrs["data-count"] == str(len(expected))
    if "method=rag-bm25" in hash_:  # one method: only its rows and passages
        sections = {n.attrs["data-method"] for n in nodes if "data-method" in n.attrs}
        assert sections == {"rag-bm25"}
        answers = [n for n in nodes if n.tag == "table" and "grid" in n.classes]
        assert "rag-dense" not in answers[1].text


def test_every_question_shows_its_trace_and_untrusted_text_stays_text(
    browser: str, page: Path, tmp_path: Path
) -> None:
    nodes = _load(browser, page, "#open=1", tmp_path)
    assert _shown(nodes) == [*ALL_NQ, "triviaqa/t-1"]
    # Nothing from the corpus or the answers became markup or ran.
    assert not [n for n in nodes if n.tag in ("img", "b")]
    assert next(n for n in nodes if n.tag == "title").text == "RetroLLM evidence inspector"
    hostile = next(n for n in nodes if n.attrs.get("data-qid") == "nq/q-hostile")
    assert '<script>document.title="pwned"</script> which "secret" island?' in hostile.text
    assert support.HOSTILE_TEXT in hostile.text
    # Every RTL override sits in an element that isolates it and guesses its direction.
    rtl = [n for n in nodes if "\u202e" in n.own and n.tag != "script"]
    assert len(rtl) >= 3  # a clue, the answer, the hostile document
    for node in rtl:
        assert any("u" in a.classes and a.attrs.get("dir") == "auto"
                   for a in (node, *node.ancestors)), node  # fmt: skip
    # The evidence marked inside its document, the gold answer marked inside the evidence.
    eiffel = [n for n in nodes if n.tag == "mark" and "ev" in n.classes]
    assert any(n.text == "It is named after the engineer " for n in eiffel)
    gold = [n.text for n in nodes if n.tag == "mark" and "gold" in n.classes]
    assert "Gustave Eiffel" in gold and "Quokka" in gold
    # The 100 kB document: clipped around its evidence, with the way to the whole of it.
    long = len(support.corpus()[support.LONG].contents)
    buttons = [n.text for n in nodes if n.tag == "button"]
    assert f"whole document ({long} characters)" in buttons
    steps = [n.text for n in nodes if "lost" in n.classes]
    assert "\u2717 answer" in steps  # the funnel step where Eiffel's answer lost the gold


def test_dvc_plots_show_renders_offline(browser: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "acc.csv").write_text("method,tokens,acc\nrag,660,18\nretrollm,336,6\n")
    (repo / "dvc.yaml").write_text(
        "plots:\n  - data/acc.csv:\n      template: scatter\n      x: tokens\n      y: acc\n"
    )
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=repo, check=True)
    template = write_offline_template(repo / "template.html")
    subprocess.run([*dvc, "plots", "show", "--html-template", str(template), "-o", "out"],
                   cwd=repo, check=True, capture_output=True, timeout=300)  # fmt: skip
    html = (repo / "out" / "index.html").read_text()
    assert "<script src" not in html and "cdn.jsdelivr" not in html
    nodes = elements(dump_dom(browser, (repo / "out" / "index.html").as_uri(),
                              tmp_path / "profile", wait_ms=5000))  # fmt: skip
    drawn = [n for n in nodes if n.tag in ("svg", "canvas") and "marks" in n.classes]
    assert drawn, "Vega drew nothing: the plot is blank"


HARNESS = """<!DOCTYPE html><html><body><pre id="out">not run</pre>
<iframe id="page" src="index.html"></iframe><script>
document.getElementById("page").addEventListener("load", () => {
  const win = document.getElementById("page").contentWindow, doc = win.document;
  const shown = () => [...doc.querySelectorAll("article")].map((a) => a.dataset.qid).join(",");
  const set = (id, value, kind) => {
    const input = doc.getElementById(id);
    input.value = value;
    input.dispatchEvent(new Event(kind));
  };
  const out = [];
  set("f-compare", "full-wrong-rag-right", "change");
  out.push(shown(), win.location.hash);
  set("f-compare", "", "change");
  set("f-q", "NEEDLE", "input");
  out.push(shown(), win.location.hash);
  document.getElementById("out").textContent = out.join("\\n");
});
</script></body></html>
"""


def test_the_controls_filter_and_keep_the_view_in_the_url(
    browser: str, page: Path, tmp_path: Path
) -> None:
    # A page next to the inspector drives its controls as a person would; file:// pages
    # may read each other only with --allow-file-access-from-files.
    harness = page.parent / "harness.html"
    harness.write_text(HARNESS)
    command = [browser, "--allow-file-access-from-files"]
    nodes = elements(dump_dom(command, harness.as_uri(), tmp_path / "profile", wait_ms=5000))
    out = next(n for n in nodes if n.attrs.get("id") == "out").text.splitlines()
    assert out == ["nq/q-eiffel", "#compare=full-wrong-rag-right", "nq/q-long", "#q=NEEDLE"]
